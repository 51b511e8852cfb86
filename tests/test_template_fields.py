"""Template fields that are not columns fail preflight before any connection."""

from __future__ import annotations

import pandas as pd
import pytest

import mailkit

SENDER = "Accounts team <accounts@example.com>"


def test_c25_missing_fields_named_with_close_columns(server):
    df = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com"], "First Name": ["Ann", "Bo"]}
    )
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            df,
            subject="Your code {{ code }}",
            body="Hi {{ first_name }}\n",
            sender=SENDER,
            smtp=server.url,
        )
    problems = caught.value.problems.set_index("column")
    assert sorted(problems.index) == ["code", "first_name"]
    assert problems["row"].isna().all()
    assert "the subject template uses {{ code }}" in problems.loc["code", "problem"]
    first_name = problems.loc["first_name", "problem"]
    assert "the body template uses {{ first_name }}" in first_name
    assert "did you mean 'First Name'" in first_name
    assert server.sessions == 0
    assert server.messages == []


def test_missing_field_in_attachment_template(tmp_path):
    df = pd.DataFrame({"email": ["a@example.com"], "file": ["x.pdf"]})
    problems = mailkit.validate(
        df,
        subject="Hi",
        body="x",
        sender=SENDER,
        attachments=str(tmp_path) + "/{{ fiel }}",
    )
    assert problems["column"].tolist()[0] == "fiel"
    assert "the attachments template uses {{ fiel }}" in problems["problem"].iloc[0]
    assert "did you mean 'file'" in problems["problem"].iloc[0]


def test_spaced_field_syntax_error_hint(server):
    df = pd.DataFrame({"email": ["a@example.com"], "first name": ["Ann"]})
    with pytest.raises(mailkit.TemplateError) as caught:
        mailkit.send_bulk(
            df,
            subject="Hi",
            body="Dear customer,\nHello {{ first name }}!\n",
            sender=SENDER,
            smtp=server.url,
        )
    message = str(caught.value)
    assert "Syntax error in the body template, line 2" in message
    assert "Jinja2 reads {{ first name }} as separate names" in message
    assert "If 'first name' is a column, write {{ row[\"first name\"] }}" in message
    assert server.sessions == 0


def test_syntax_error_without_spaced_field():
    with pytest.raises(mailkit.TemplateError) as caught:
        mailkit.validate(
            pd.DataFrame({"email": ["a@example.com"]}),
            subject="Hi {{ name",
            body="x",
            sender=SENDER,
        )
    message = str(caught.value)
    assert "Syntax error in the subject template, line 1" in message
    assert "separate names" not in message


def test_row_item_reads_spaced_column(server):
    df = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com"], "first name": ["Ann", "Bo"]}
    )
    results = mailkit.send_bulk(
        df,
        subject='Hi {{ row["first name"] }}',
        body="Hello {{ row['first name'] }}!\n",
        sender=SENDER,
        smtp=server.url,
    )
    assert results["status"].tolist() == ["sent", "sent"]
    by_recipient = {m.recipients[0]: m.message for m in server.messages}
    assert by_recipient["a@example.com"]["Subject"] == "Hi Ann"
    assert by_recipient["b@example.com"]["Subject"] == "Hi Bo"
    assert b"Hello Ann!" in server.messages[0].data + server.messages[1].data
    assert b"Hello Bo!" in server.messages[0].data + server.messages[1].data


def test_row_item_checked_like_field(server):
    df = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com"], "first name": ["Ann", " "]},
        index=["ann", "bo"],
    )
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            df,
            subject="Hi",
            body='Hello {{ row["first name"] }} and {{ row["last name"] }}',
            sender=SENDER,
            smtp=server.url,
        )
    problems = caught.value.problems.set_index("column")
    assert sorted(problems.index) == ["first name", "last name"]
    assert problems.loc["first name", "row"] == "bo"
    assert "the cell is empty" in problems.loc["first name", "problem"]
    missing = problems.loc["last name", "problem"]
    assert 'the body template uses {{ row["last name"] }}' in missing
    assert "did you mean 'first name'" in missing
    assert server.sessions == 0
