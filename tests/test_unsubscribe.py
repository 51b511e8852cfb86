"""List-Unsubscribe headers on the wire: whole URLs, no encoded words."""

from __future__ import annotations

import pandas as pd
import pytest

import mailkit
from wire import assert_wire_form, header_block, parse

SENDER = "News <news@example.com>"
TOKEN = "t0K-" * 30


def test_c40_list_unsubscribe_headers(server):
    df = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com"], "token": [TOKEN, "short"]}
    )
    mailkit.send_bulk(
        df,
        subject="News",
        body="x\n",
        sender=SENDER,
        unsubscribe_url="https://example.com/u?t={{ token }}",
        unsubscribe_mailto="unsubscribe@example.com",
        mode="fast",
        smtp=server.url,
    )
    by_recipient = {m.recipients[0]: m.data for m in server.messages}
    long_url = f"https://example.com/u?t={TOKEN}"
    data = by_recipient["a@example.com"]
    assert len(long_url) == 144
    assert_wire_form(data)
    headers = header_block(data)
    assert (
        b"List-Unsubscribe: <" + long_url.encode() + b">,\r\n"
        b" <mailto:unsubscribe@example.com>\r\n"
    ) in headers
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in headers
    assert b"=?" not in headers
    message = parse(data)
    assert message["List-Unsubscribe"] == (
        f"<{long_url}>, <mailto:unsubscribe@example.com>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    short = header_block(by_recipient["b@example.com"])
    assert (
        b"List-Unsubscribe: <https://example.com/u?t=short>,\r\n"
        b" <mailto:unsubscribe@example.com>\r\n"
    ) in short


def test_mailto_only_has_no_post_header(server):
    df = pd.DataFrame({"email": ["a@example.com"]})
    mailkit.send_bulk(
        df,
        subject="News",
        body="x\n",
        sender=SENDER,
        unsubscribe_mailto="unsubscribe@example.com",
        smtp=server.url,
    )
    message = parse(server.messages[0].data)
    assert message["List-Unsubscribe"] == "<mailto:unsubscribe@example.com>"
    assert "List-Unsubscribe-Post" not in message


def test_list_unsubscribe_through_headers_folds(server):
    url = "https://example.com/unsubscribe?token=" + "x" * 90
    df = pd.DataFrame({"email": ["a@example.com"]})
    mailkit.send_bulk(
        df,
        subject="News",
        body="x\n",
        sender=SENDER,
        headers={"List-Unsubscribe": f"<{url}>"},
        smtp=server.url,
    )
    data = server.messages[0].data
    assert f"List-Unsubscribe: <{url}>\r\n".encode() in data
    assert parse(data)["List-Unsubscribe"] == f"<{url}>"


def test_invalid_unsubscribe_values(server):
    df = pd.DataFrame({"email": ["a@example.com", "b@example.com"], "u": ["x y", ""]})
    with pytest.raises(mailkit.ConfigurationError, match="not an http or https URL"):
        mailkit.validate(
            df, subject="Hi", body="x", sender=SENDER, unsubscribe_url="https://"
        )
    problems = mailkit.validate(
        df, subject="Hi", body="x", sender=SENDER, unsubscribe_url="u"
    )
    assert problems[["row", "column"]].values.tolist() == [[0, "u"]]
    assert "not an http or https URL" in problems["problem"].iloc[0]
    options = dict(
        subject="Hi",
        body="x\n",
        sender=SENDER,
        unsubscribe_url="{{ u }}",
        allow_empty=["u"],
        mode="fast",
        smtp=server.url,
    )
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(df, **options)
    problems = caught.value.problems
    assert problems[["row", "column"]].values.tolist() == [[0, "unsubscribe_url="]]
    assert "Invalid unsubscribe URL" in problems["problem"].iloc[0]
    assert server.sessions == 0
    results = mailkit.send_bulk(df.iloc[1:], **options)
    assert results["status"].tolist() == ["sent"]
    assert "List-Unsubscribe" not in parse(server.messages[0].data)
    with pytest.raises(mailkit.ConfigurationError, match="keep one"):
        mailkit.validate(
            df,
            subject="Hi",
            body="x",
            sender=SENDER,
            unsubscribe_url="u",
            headers={"List-Unsubscribe": "<https://example.com>"},
        )
