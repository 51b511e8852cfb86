"""Blank cells from pandas: reported, filled, skipped or allowed, never "nan"."""

from __future__ import annotations

import io

import pandas as pd
import pytest

import mailkit
from wire import parse, text_of

SENDER = "Accounts team <accounts@example.com>"
BODY = "Dear {{ first_name }}, amount due {{ amount }}\n"
FORBIDDEN = (b"nan", b"None", b"NaT", b"12.0")


def _frame() -> pd.DataFrame:
    text = "email,first_name,amount\nalice@example.com,,12\nbob@example.com,Bob,\n"
    return pd.read_csv(io.StringIO(text))


def _bodies(server) -> dict[str, str]:
    return {m.recipients[0]: text_of(parse(m.data)) for m in server.messages}


def test_c26_blank_cells_reported(server):
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            _frame(), subject="Hi", body=BODY, sender=SENDER, smtp=server.url
        )
    problems = caught.value.problems
    assert problems[["row", "column"]].values.tolist() == [
        [1, "amount"],
        [0, "first_name"],
    ]
    assert problems["problem"].str.contains("the cell is empty").all()
    assert problems["problem"].str.contains("fill_empty=").all()
    assert problems["value"].isna().all()
    assert "(value: nan)" in str(caught.value)
    assert server.sessions == 0


def test_c26_fill_empty_and_integer_floats(server):
    df = _frame()
    assert df["amount"].dtype == float
    mailkit.send_bulk(
        df,
        subject="Hi {{ first_name }}",
        body=BODY,
        sender=SENDER,
        mode="fast",
        fill_empty={"first_name": "customer", "amount": 0},
        smtp=server.url,
    )
    assert _bodies(server) == {
        "alice@example.com": "Dear customer, amount due 12\n",
        "bob@example.com": "Dear Bob, amount due 0\n",
    }
    subjects = sorted(parse(m.data)["Subject"] for m in server.messages)
    assert subjects == ["Hi Bob", "Hi customer"]
    for received in server.messages:
        for text in FORBIDDEN:
            assert text not in received.data


def test_c26_skip_empty_rows(server):
    results = mailkit.send_bulk(
        _frame(),
        subject="Hi",
        body=BODY,
        sender=SENDER,
        mode="fast",
        skip_empty=["amount"],
        allow_empty=["first_name"],
        smtp=server.url,
    )
    assert results["status"].tolist() == ["sent", "skipped"]
    assert (
        results["error"].iloc[1] == "Not sent: the 'amount' cell is empty (skip_empty)."
    )
    assert results["to"].iloc[1] == "bob@example.com"
    assert _bodies(server) == {"alice@example.com": "Dear , amount due 12\n"}
    assert b"nan" not in server.messages[0].data


def test_c26_allow_empty_prints_nothing(server):
    mailkit.send_bulk(
        _frame(),
        subject="Hi",
        body=BODY,
        sender=SENDER,
        mode="fast",
        allow_empty=True,
        smtp=server.url,
    )
    assert _bodies(server) == {
        "alice@example.com": "Dear , amount due 12\n",
        "bob@example.com": "Dear Bob, amount due \n",
    }


def test_c26_missing_values_are_false_in_templates(server):
    df = _frame().assign(joined=pd.to_datetime(["2024-03-05", None]))
    mailkit.send_bulk(
        df,
        subject="Hi",
        body=(
            "Dear {{ first_name or 'customer' }}"
            "{% if joined %}, member since {{ joined }}{% endif %}\n"
        ),
        sender=SENDER,
        mode="fast",
        allow_empty=True,
        smtp=server.url,
    )
    assert _bodies(server) == {
        "alice@example.com": "Dear customer, member since 2024-03-05\n",
        "bob@example.com": "Dear Bob\n",
    }


def test_blank_text_counts_as_empty():
    df = pd.DataFrame({"email": ["a@example.com"], "name": ["   "]})
    problems = mailkit.validate(df, subject="Hi {{ name }}", body="x", sender=SENDER)
    assert problems[["row", "column"]].values.tolist() == [[0, "name"]]


def test_conflicting_empty_options():
    with pytest.raises(
        mailkit.ConfigurationError, match="both allow_empty= and fill_empty="
    ):
        mailkit.validate(
            _frame(),
            subject="Hi",
            body=BODY,
            sender=SENDER,
            allow_empty=["amount"],
            fill_empty={"amount": 0},
        )


def test_skip_empty_on_unused_column(server):
    df = _frame().assign(phone=["", "555-0100"])
    results = mailkit.send_bulk(
        df,
        subject="Hi",
        body=BODY,
        sender=SENDER,
        fill_empty={"first_name": "customer", "amount": 0},
        skip_empty=["phone"],
        smtp=server.url,
    )
    assert results["status"].tolist() == ["skipped", "sent"]
    assert [m.recipients for m in server.messages] == [("bob@example.com",)]


def test_empty_options_name_missing_columns():
    problems = mailkit.validate(
        _frame(),
        subject="Hi",
        body=BODY,
        sender=SENDER,
        allow_empty=True,
        fill_empty={"First_name": "x"},
        skip_empty=["amout"],
    )
    assert problems["column"].tolist() == ["amout", "First_name"]
    assert "skip_empty= names 'amout'" in problems["problem"].iloc[0]
    assert "did you mean 'amount'" in problems["problem"].iloc[0]
    assert "did you mean 'first_name'" in problems["problem"].iloc[1]


def test_allow_empty_true_leaves_other_options(server):
    results = mailkit.send_bulk(
        _frame(),
        subject="Hi",
        body=BODY,
        sender=SENDER,
        allow_empty=True,
        fill_empty={"amount": 0},
        mode="fast",
        smtp=server.url,
    )
    assert (results["status"] == "sent").all()
    bodies = {m.recipients[0]: text_of(parse(m.data)) for m in server.messages}
    assert bodies["alice@example.com"] == "Dear , amount due 12\n"
    assert bodies["bob@example.com"] == "Dear Bob, amount due 0\n"


@pytest.mark.parametrize("allow_empty", [["first_nme"], "first_nme"])
def test_allow_empty_names_missing_column(server, allow_empty):
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            _frame(),
            subject="Hi",
            body=BODY,
            sender=SENDER,
            allow_empty=allow_empty,
            fill_empty={"amount": 0},
            smtp=server.url,
        )
    problems = caught.value.problems
    typo = problems[problems["column"] == "first_nme"]
    assert len(typo) == 1
    assert typo["row"].isna().all()
    problem = typo["problem"].iloc[0]
    assert "allow_empty= names 'first_nme', which is not a column" in problem
    assert "did you mean 'first_name'" in problem
    assert "allow_empty= names 'first_nme'" in str(caught.value)
    assert server.sessions == 0


def test_empty_options_accept_real_columns():
    problems = mailkit.validate(
        _frame().assign(phone=["", "555-0100"]),
        subject="Hi",
        body=BODY,
        sender=SENDER,
        allow_empty=["first_name", "phone"],
        fill_empty={"amount": 0},
    )
    assert problems.empty


def test_key_names_missing_column():
    problems = mailkit.validate(
        _frame(), subject="Hi", body="x", sender=SENDER, key="emial"
    )
    assert problems["column"].tolist() == ["emial"]
    assert "the key column 'emial' is missing" in problems["problem"].iloc[0]
    assert "did you mean 'email'" in problems["problem"].iloc[0]
