"""Recipients on the wire: IDN, SMTPUTF8, Cc, Bcc, Reply-To, names, duplicates."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import mailkit
from mailkit.testing import Extensions, FaultSMTPServer
from wire import assert_wire_form, header_block, parse

SENDER = "Accounts team <accounts@example.com>"


def _addresses(header) -> list[tuple[str, str]]:
    return [(item.display_name, item.addr_spec) for item in header.addresses]


def test_c10_without_smtputf8():
    df = pd.DataFrame({"email": ["jörg@example.com", "anna@bücher.example"]})
    with FaultSMTPServer(extensions=Extensions(smtputf8=False)) as server:
        results = mailkit.send_bulk(
            df, subject="Hi", body="x\n", sender=SENDER, mode="fast", smtp=server.url
        )
    assert results["status"].tolist() == ["failed", "sent"]
    error = results["error"].iloc[0]
    assert "SMTPUTF8" in error
    assert "jörg@example.com" in error
    assert results["attempts"].iloc[0] == 0
    (received,) = server.messages
    assert received.rcpt_tos == ("anna@xn--bcher-kva.example",)
    assert not received.smtputf8
    assert_wire_form(received.data)
    headers = header_block(received.data).decode("ascii")
    assert "To: anna@xn--bcher-kva.example\r\n" in headers
    for addr_spec in re.findall(r"[^\s<>,:]+@[^\s<>,]+", headers):
        assert "=?" not in addr_spec
    assert results["to"].iloc[1] == "anna@xn--bcher-kva.example"


def test_c10_with_smtputf8():
    df = pd.DataFrame({"email": ["jörg@example.com", "anna@bücher.example"]})
    with FaultSMTPServer(extensions=Extensions(smtputf8=True)) as server:
        results = mailkit.send_bulk(
            df,
            subject="Grüße",
            body="x\n",
            sender=SENDER,
            mode="fast",
            smtp=server.url,
        )
    assert results["status"].tolist() == ["sent", "sent"]
    by_recipient = {m.rcpt_tos[0]: m for m in server.messages}
    utf8 = by_recipient["jörg@example.com"]
    assert utf8.smtputf8
    assert_wire_form(utf8.data, seven_bit=False)
    assert "To: jörg@example.com\r\n".encode() in utf8.data
    assert b"=?utf-8?" not in header_block(utf8.data).split(b"Subject:")[0]
    message = parse(utf8.data)
    assert _addresses(message["To"]) == [("", "jörg@example.com")]
    assert message["Subject"] == "Grüße"
    idn = by_recipient["anna@xn--bcher-kva.example"]
    assert not idn.smtputf8
    assert_wire_form(idn.data)


def test_c11_whitespace_and_separators(server):
    df = pd.DataFrame(
        {
            "email": [
                " alice@example.com ",
                "bob@example.com,",
                "carol@example.com; dave@example.com",
            ]
        }
    )
    results = mailkit.send_bulk(
        df, subject="Hi", body="x\n", sender=SENDER, mode="fast", smtp=server.url
    )
    assert results["status"].tolist() == ["sent"] * 3
    envelopes = sorted(m.recipients for m in server.messages)
    assert envelopes == [
        ("alice@example.com",),
        ("bob@example.com",),
        ("carol@example.com", "dave@example.com"),
    ]
    carol = next(m for m in server.messages if len(m.recipients) == 2)
    assert _addresses(parse(carol.data)["To"]) == [
        ("", "carol@example.com"),
        ("", "dave@example.com"),
    ]


def test_c11_empty_and_invalid_cells(server):
    df = pd.DataFrame(
        {"email": ["alice@example.com", "", "not-an-address", ",;", "x@example.com"]}
    )
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(df, subject="Hi", body="x\n", sender=SENDER, smtp=server.url)
    problems = caught.value.problems
    assert sorted(problems["row"].tolist()) == [1, 2, 3]
    assert set(problems["column"]) == {"email"}
    by_row = dict(zip(problems["row"], problems["problem"]))
    assert "empty" in by_row[1]
    assert "no @" in by_row[2]
    assert "no address" in by_row[3]
    assert all(text.strip() for text in problems["problem"])
    assert server.sessions == 0


def test_c14_bcc_only_in_rcpt(server):
    df = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com"], "bcc": ["audit@example.com", ""]}
    )
    mailkit.send_bulk(
        df,
        subject="Hi",
        body="x\n",
        sender=SENDER,
        bcc="bcc",
        mode="fast",
        smtp=server.url,
    )
    first, second = sorted(server.messages, key=lambda m: m.recipients[0])
    assert first.recipients == ("a@example.com", "audit@example.com")
    assert second.recipients == ("b@example.com",)
    for received in server.messages:
        assert b"audit@example.com" not in received.data
        assert b"bcc:" not in received.data.lower()
        assert "Bcc" not in parse(received.data)


def test_c14_fixed_bcc_and_bcc_header_rejected(server):
    df = pd.DataFrame({"email": ["a@example.com"]})
    mailkit.send_bulk(
        df,
        subject="Hi",
        body="x\n",
        sender=SENDER,
        bcc=["x@example.com", "y@example.com"],
        smtp=server.url,
    )
    (received,) = server.messages
    assert received.recipients == ("a@example.com", "x@example.com", "y@example.com")
    assert b"x@example.com" not in received.data
    with pytest.raises(mailkit.ConfigurationError, match="pass bcc="):
        mailkit.send_bulk(
            df,
            subject="Hi",
            body="x\n",
            sender=SENDER,
            smtp=server.url,
            headers={"Bcc": "x@example.com"},
        )


def test_cc_reply_to_and_names_from_columns(server):
    df = pd.DataFrame(
        {
            "email": ["ann@example.com"],
            "name": ['Doe, Ann "Annie" Ünïcode'],
            "manager": ['"Roe, Rick" <rick@example.com>; Zoë <zoe@example.org>'],
            "reply": ["help@example.com"],
            "reply_name": ["Help desk"],
        }
    )
    mailkit.send_bulk(
        df,
        subject="Hi",
        body="x\n",
        sender=SENDER,
        to_name="name",
        cc="manager",
        reply_to="reply",
        reply_to_name="reply_name",
        smtp=server.url,
    )
    (received,) = server.messages
    assert_wire_form(received.data)
    assert received.recipients == (
        "ann@example.com",
        "rick@example.com",
        "zoe@example.org",
    )
    message = parse(received.data)
    assert _addresses(message["To"]) == [
        ('Doe, Ann "Annie" Ünïcode', "ann@example.com")
    ]
    assert _addresses(message["Cc"]) == [
        ("Roe, Rick", "rick@example.com"),
        ("Zoë", "zoe@example.org"),
    ]
    assert _addresses(message["Reply-To"]) == [("Help desk", "help@example.com")]
    assert "help@example.com" not in received.recipients


def test_envelope_lists_each_recipient_once(server):
    df = pd.DataFrame(
        {"email": ["a@example.com; A@Example.com"], "cc": ["a@example.com"]}
    )
    mailkit.send_bulk(
        df,
        subject="Hi",
        body="x\n",
        sender=SENDER,
        cc="cc",
        bcc="a@example.com",
        smtp=server.url,
    )
    (received,) = server.messages
    assert received.recipients == ("a@example.com",)


def test_duplicate_recipients_reported(server):
    df = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com", "A@example.com"]}, index=[5, 6, 7]
    )
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(df, subject="Hi", body="x\n", sender=SENDER, smtp=server.url)
    problems = caught.value.problems
    assert problems["row"].tolist() == [7]
    assert "also receives row 5" in problems["problem"].iloc[0]
    assert "duplicates='skip'" in problems["problem"].iloc[0]
    assert server.sessions == 0


def test_duplicate_recipients_skipped(server):
    df = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com", "A@example.com"]}, index=[5, 6, 7]
    )
    results = mailkit.send_bulk(
        df,
        subject="Hi",
        body="x\n",
        sender=SENDER,
        duplicates="skip",
        mode="fast",
        smtp=server.url,
    )
    assert list(results.index) == [5, 6, 7]
    assert results["status"].tolist() == ["sent", "sent", "skipped"]
    assert "already receives row 5" in results["error"].iloc[2]
    assert sorted(m.recipients for m in server.messages) == [
        ("a@example.com",),
        ("b@example.com",),
    ]
    allowed = mailkit.send_bulk(
        df, subject="Hi", body="x\n", sender=SENDER, duplicates="allow", smtp=server.url
    )
    assert (allowed["status"] == "sent").all()


def test_name_column_with_several_addresses(server):
    df = pd.DataFrame({"email": ["a@example.com, b@example.com"], "name": ["Ann"]})
    with pytest.raises(mailkit.ValidationError, match="display name column"):
        mailkit.send_bulk(
            df, subject="Hi", body="x\n", sender=SENDER, to_name="name", smtp=server.url
        )


def test_missing_cc_column_names_close_column():
    df = pd.DataFrame({"email": ["a@example.com"], "CC": ["c@example.com"]})
    problems = mailkit.validate(df, subject="Hi", body="x", sender=SENDER, cc="cc")
    assert problems["column"].tolist() == ["cc"]
    assert "did you mean 'CC'" in problems["problem"].iloc[0]


@pytest.mark.parametrize(
    "cell, reason",
    [
        ("a..b@example.com", "two dots"),
        ("a@bad_domain.example", "domain label"),
        ("a@-x.example", "domain label"),
        ('"unclosed@example.com', "quoted"),
    ],
)
def test_invalid_addr_spec_reasons(cell, reason):
    df = pd.DataFrame({"email": [cell]})
    problems = mailkit.validate(df, subject="Hi", body="x", sender=SENDER)
    assert problems["row"].tolist() == [0]
    assert reason in problems["problem"].iloc[0]
