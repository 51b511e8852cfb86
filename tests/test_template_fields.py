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
