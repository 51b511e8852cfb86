"""Preflight: bad input raises ValidationError before any connection."""

from __future__ import annotations

import pandas as pd
import pytest

import mailkit

SENDER = "Accounts team <accounts@example.com>"


def test_missing_field_names_row_column_and_close_name(server):
    df = pd.DataFrame({"email": ["a@example.com"], "First Name": ["Ann"]})
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            df, subject="Hi {{ first_name }}", body="x", sender=SENDER, smtp=server.url
        )
    problems = caught.value.problems
    assert list(problems.columns) == ["row", "column", "problem", "value"]
    assert problems["column"].tolist() == ["first_name"]
    assert "'First Name'" in problems["problem"].iloc[0]
    assert "first_name" in str(caught.value)
    assert server.sessions == 0
    assert server.messages == []


@pytest.mark.parametrize(
    "cell, reason",
    [
        ("not-an-address", "no @"),
        ("", "empty"),
        (None, "empty"),
        ("a b@example.com", "whitespace"),
        ("a@example", "domain"),
    ],
)
def test_invalid_address_names_row_and_column(server, cell, reason):
    df = pd.DataFrame(
        {"email": ["ok@example.com", cell, "fine@example.org"]}, index=[10, 11, 12]
    )
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(df, subject="Hi", body="x", sender=SENDER, smtp=server.url)
    problems = caught.value.problems
    assert problems["row"].tolist() == [11]
    assert problems["column"].tolist() == ["email"]
    assert reason in problems["problem"].iloc[0]
    assert "row 11, column 'email'" in str(caught.value)
    assert server.sessions == 0


def test_missing_recipient_column(server):
    df = pd.DataFrame({"Email": ["a@example.com"]})
    with pytest.raises(mailkit.ValidationError, match="did you mean 'Email'"):
        mailkit.send_bulk(df, subject="Hi", body="x", sender=SENDER, smtp=server.url)
    assert server.sessions == 0


def test_empty_cell_used_by_template(server):
    df = pd.DataFrame({"email": ["a@example.com", "b@example.com"], "name": ["Ann", None]})
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(df, subject="Hi {{ name }}", body="x", sender=SENDER, smtp=server.url)
    assert caught.value.problems[["row", "column"]].values.tolist() == [[1, "name"]]
    results = mailkit.send_bulk(
        df, subject="Hi {{ name }}", body="x", sender=SENDER, smtp=server.url,
        allow_empty=["name"],
    )
    assert (results["status"] == "sent").all()
    subjects = sorted(m.message["Subject"] for m in server.messages)
    assert subjects == ["Hi", "Hi Ann"]


def test_line_break_in_subject_field(server):
    df = pd.DataFrame({"email": ["a@example.com"], "title": ["Welcome\r\nBcc: eve@example.net"]})
    with pytest.raises(mailkit.ValidationError, match="line break"):
        mailkit.send_bulk(df, subject="{{ title }}", body="x", sender=SENDER, smtp=server.url)
    assert server.sessions == 0


def test_validate_returns_problems_without_sending(server):
    df = pd.DataFrame({"email": ["bad", "a@example.com"]})
    problems = mailkit.validate(df, subject="Hi {{ nope }}", body="x", sender=SENDER)
    assert len(problems) == 2
    assert set(problems["column"]) == {"email", "nope"}


def test_template_syntax_error():
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.TemplateError, match="subject template, line 1"):
        mailkit.validate(df, subject="Hi {{ name", body="x", sender=SENDER)


def test_invalid_sender():
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.ConfigurationError, match="Invalid sender"):
        mailkit.validate(df, subject="Hi", body="x", sender="nobody")


def test_unknown_option_is_rejected():
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.ConfigurationError, match="Unknown option"):
        mailkit.send_bulk(df, subject="Hi", body="x", sender=SENDER, smtp="smtp://127.0.0.1:1", colour="red")


def test_not_a_dataframe():
    with pytest.raises(TypeError, match="pandas DataFrame"):
        mailkit.send_bulk([{"email": "a@example.com"}], subject="Hi", body="x", sender=SENDER)


def test_templated_unsubscribe_url_checked_per_row(server):
    df = pd.DataFrame({"email": ["a@example.com", "b@example.com"], "name": ["Zoë", "Bob"]})
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            df, subject="Hi", body="x", sender=SENDER, smtp=server.url,
            unsubscribe_url="https://example.com/u?n={{ name }}",
        )
    problems = caught.value.problems
    assert problems["row"].tolist() == [0]
    assert problems["column"].tolist() == ["unsubscribe_url="]
    assert "non-ASCII" in problems["problem"].iloc[0]
    assert server.sessions == 0


def test_templated_recipient_checked_per_row(server):
    df = pd.DataFrame({"user": ["ann", "bo b"]})
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            df, subject="Hi", body="x", sender=SENDER, smtp=server.url,
            to="{{ user }}@example.com",
        )
    assert caught.value.problems["row"].tolist() == [1]
    assert server.sessions == 0


@pytest.mark.parametrize(
    "options",
    [
        {"subject": "Hi\n{{ name }}"},
        {"subject": "Hi", "headers": {"X-Tag": "x\r\nBcc: e@example.com"}},
    ],
)
def test_line_break_in_header_template_text(server, options):
    df = pd.DataFrame({"email": ["a@example.com"], "name": ["Ann"]})
    with pytest.raises(mailkit.ConfigurationError, match="must be one line"):
        mailkit.send_bulk(df, body="x", sender=SENDER, smtp=server.url, **options)
    assert server.sessions == 0


def test_subject_file_with_trailing_newline_is_accepted(server, tmp_path):
    subject = tmp_path / "subject.txt"
    subject.write_text("Hello {{ name }}\n", encoding="utf-8")
    df = pd.DataFrame({"email": ["a@example.com"], "name": ["Ann"]})
    results = mailkit.send_bulk(df, subject=subject, body="x", sender=SENDER, smtp=server.url)
    assert results["status"].tolist() == ["sent"]
    assert server.messages[0].message["Subject"] == "Hello Ann"


@pytest.mark.parametrize(
    "cell, escaped",
    [
        ("ann\u200b@example.com", "'\\u200b'"),
        ("ann@exam\u200cple.com", "'\\u200c'"),
        ("ann\u200d@example.com", "'\\u200d'"),
        ("\u2060ann@example.com", "'\\u2060'"),
        ("ann@example.com\ufeff", "'\\ufeff'"),
        ("Ann <ann@exam\u200bple.com>", "'\\u200b'"),
    ],
)
def test_invisible_character_in_address(server, cell, escaped):
    df = pd.DataFrame({"email": ["ok@example.com", cell]}, index=["first", "second"])
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(df, subject="Hi", body="x", sender=SENDER, smtp=server.url)
    problems = caught.value.problems
    assert problems["row"].tolist() == ["second"]
    assert problems["column"].tolist() == ["email"]
    assert problems["value"].tolist() == [cell]
    problem = problems["problem"].iloc[0]
    assert f"invisible character {escaped}" in problem
    assert "delete it or type the address again" in problem
    message = str(caught.value)
    assert "row 'second', column 'email'" in message
    assert escaped in message
    assert server.sessions == 0
    assert server.messages == []


def test_invisible_character_in_sender(server):
    with pytest.raises(mailkit.ConfigurationError, match=r"Invalid sender") as caught:
        mailkit.send_bulk(
            pd.DataFrame({"email": ["ok@example.com"]}),
            subject="Hi",
            body="x",
            sender="me\u200b@example.com",
            smtp=server.url,
        )
    assert "invisible character '\\u200b'" in str(caught.value)
    assert server.sessions == 0


def _concatenated_frame() -> pd.DataFrame:
    first = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com"], "name": ["A", "B"]}
    )
    second = first.assign(email=["c@example.com", "d@example.com"])
    return pd.concat([first, second])


def test_duplicate_index_labels_rejected(server):
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            _concatenated_frame(),
            subject="Hi {{ name }}",
            body="x",
            sender=SENDER,
            smtp=server.url,
        )
    problems = caught.value.problems
    assert problems["column"].tolist() == ["index"]
    assert problems["row"].tolist() == [None]
    assert problems["value"].tolist() == [0]
    problem = problems["problem"].iloc[0]
    assert "the DataFrame index is not unique: 2 label(s)" in problem
    assert "such as 0 at positions 0, 2 (counted from 0)" in problem
    assert "df.reset_index(drop=True)" in str(caught.value)
    assert server.sessions == 0
    assert server.messages == []


def test_duplicate_index_labels_in_validate():
    problems = mailkit.validate(
        _concatenated_frame(), subject="Hi {{ nmae }}", body="x", sender=SENDER
    )
    # Only the index is reported, because other problems would name rows
    # by labels that match two rows.
    assert problems["column"].tolist() == ["index"]
    reset = mailkit.validate(
        _concatenated_frame().reset_index(drop=True),
        subject="Hi {{ name }}",
        body="x",
        sender=SENDER,
    )
    assert reset.empty


def test_duplicate_index_labels_in_preview():
    with pytest.raises(mailkit.ValidationError, match="reset_index"):
        mailkit.preview(
            _concatenated_frame(), 1, subject="Hi {{ name }}", body="x", sender=SENDER
        )
