"""Header encoding, folding, injection checks, Date and Message-ID, on the wire."""

from __future__ import annotations

import re
from collections import Counter
from email.message import EmailMessage

import pandas as pd
import pytest

import mailkit
from mailkit import headers
from mailkit.headers import SEVEN_BIT_POLICY
from mailkit.testing import Extensions, FaultSMTPServer, defer_recipient
from wire import assert_wire_form, header_block, parse

SENDER = "Accounts team <accounts@example.com>"


def test_c01_non_ascii_subject_and_names():
    df = pd.DataFrame({"email": ["alice@example.com"], "name": ["Zoë Ångström"]})
    with FaultSMTPServer(extensions=Extensions(smtputf8=False)) as server:
        results = mailkit.send_bulk(
            df,
            subject="Résumé für {{ name }}",
            body="Hallo {{ name }}\n",
            sender="Équipe Ünïcode <team@example.com>",
            to_name="name",
            smtp=server.url,
        )
    assert results["status"].tolist() == ["sent"]
    (received,) = server.messages
    assert_wire_form(received.data)
    headers = header_block(received.data).decode("ascii")
    assert "=?utf-8?" in headers
    assert "<team@example.com>" in headers
    assert "<alice@example.com>" in headers
    assert received.rcpt_tos == ("alice@example.com",)
    assert received.mail_from == "team@example.com"
    for addr_spec in re.findall(r"<([^>]*)>", headers):
        assert "=?" not in addr_spec
    message = parse(received.data)
    assert message["Subject"] == "Résumé für Zoë Ångström"
    assert message["From"].addresses[0].display_name == "Équipe Ünïcode"
    assert message["From"].addresses[0].addr_spec == "team@example.com"
    assert message["To"].addresses[0].display_name == "Zoë Ångström"
    assert message["To"].addresses[0].addr_spec == "alice@example.com"
    assert not received.smtputf8


@pytest.mark.parametrize(
    "subject",
    [
        "Invoice INV-2027-0001 for Maple Leaf Dental Clinic: 80.99 EUR due 2027-07-30",
        "Invoice INV-2027-0002 for Hanbit Electronics: 2590.65 EUR due 2027-05-25, "
        "Zoë Ångström, 臺北 and a few more words to fold",
        "https://example.com/" + "a" * 120,
        "Price =?utf-8?q?x?= is typed text, not an encoded word",
    ],
)
def test_long_subject_folds_on_first_line(server, subject):
    df = pd.DataFrame({"email": ["a@example.com"], "title": [subject]})
    mailkit.send_bulk(
        df, subject="{{ title }}", body="x\n", sender=SENDER, smtp=server.url
    )
    data = server.messages[0].data
    assert_wire_form(data)
    assert re.search(rb"\r\nSubject: \S", b"\r\n" + data), "empty first Subject line"
    assert parse(data)["Subject"] == subject


def test_mime_version_only_at_top(server):
    df = pd.DataFrame({"email": ["a@example.com"]})
    mailkit.send_bulk(
        df,
        subject="Hi",
        body="Text\n",
        html="<p>HTML</p>",
        sender=SENDER,
        smtp=server.url,
    )
    data = server.messages[0].data
    assert data.count(b"MIME-Version:") == 1
    assert header_block(data).count(b"MIME-Version: 1.0") == 1
    message = parse(data)
    for part in message.iter_parts():
        assert "MIME-Version" not in part


@pytest.mark.parametrize(
    "title",
    [
        "Welcome\r\nBcc: eve@example.net",
        "Hello\n",
        "=?UTF-8?Q?x=0ABcc:_eve@example.net?=",
    ],
)
def test_c13_header_injection_rejected(server, title):
    df = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com"], "title": ["Fine", title]},
        index=["first", "second"],
    )
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            df, subject="{{ title }}", body="x\n", sender=SENDER, smtp=server.url
        )
    problems = caught.value.problems
    assert problems["row"].tolist() == ["second"]
    assert problems["column"].tolist() == ["title"]
    assert "line break" in problems["problem"].iloc[0]
    assert server.sessions == 0
    assert server.messages == []


def test_c13_typed_encoded_word_stays_literal(server):
    title = "Offer =?utf-8?q?Bcc=3A_eve@example.net?= ends today"
    df = pd.DataFrame({"email": ["a@example.com"], "title": [title]})
    mailkit.send_bulk(
        df,
        subject="{{ title }}",
        body="x\n",
        sender=SENDER,
        smtp=server.url,
        headers={"X-Campaign": "{{ title }}"},
    )
    (received,) = server.messages
    assert received.recipients == ("a@example.com",)
    message = parse(received.data)
    assert message["Subject"] == title
    assert message["X-Campaign"] == title
    names = [name.lower() for name in message.keys()]
    assert sorted(names) == sorted(
        [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "x-campaign",
            "mime-version",
            "content-type",
            "content-transfer-encoding",
        ]
    )
    assert b"eve@example.net" not in received.data


def test_line_break_from_template_fails_row(server):
    df = pd.DataFrame({"email": ["a@example.com", "b@example.com"], "n": [1, 2]})
    results = mailkit.send_bulk(
        df,
        subject="{{ 'Two\\nBcc: eve@example.net' if n == 2 else 'One' }}",
        body="x\n",
        sender=SENDER,
        smtp=server.url,
    )
    assert results["status"].tolist() == ["sent", "failed"]
    assert "line break" in results["error"].iloc[1]
    assert [m.recipients for m in server.messages] == [("a@example.com",)]


def test_c15_date_and_message_id_per_message(server):
    df = pd.DataFrame({"email": [f"user{i}@example.com" for i in range(100)]})
    results = mailkit.send_bulk(
        df,
        subject="Hi",
        body="x\n",
        sender=SENDER,
        mode="instant",
        max_workers=4,
        smtp=server.url,
    )
    assert (results["status"] == "sent").all()
    assert len(server.messages) == 100
    message_ids = []
    for received in server.messages:
        headers = header_block(received.data)
        assert headers.count(b"\r\nDate: ") + headers.startswith(b"Date: ") == 1
        assert headers.count(b"\r\nMessage-ID: ") == 1
        message = parse(received.data)
        assert message["Date"].datetime.tzinfo is not None
        assert re.search(r"[+-]\d{4}$", str(message["Date"]))
        message_id = message["Message-ID"]
        assert re.fullmatch(r"<[^<>@\s]+@example\.com>", message_id)
        message_ids.append(message_id)
    assert len(set(message_ids)) == 100
    assert Counter(message_ids) == Counter(results["message_id"])


def test_c15_retry_reuses_message_id():
    df = pd.DataFrame({"email": ["slow@example.com", "fast@example.com"]})
    with FaultSMTPServer(
        rules=[defer_recipient("slow@example.com", times=1)]
    ) as server:
        results = mailkit.send_bulk(
            df,
            subject="Hi",
            body="x\n",
            sender=SENDER,
            mode="fast",
            retry_backoff=0.01,
            smtp=server.url,
        )
    assert results["status"].tolist() == ["sent", "sent"]
    assert results["attempts"].tolist() == [2, 1]
    by_recipient = {m.rcpt_tos[0]: parse(m.data) for m in server.messages}
    assert len(by_recipient) == 2
    assert (
        by_recipient["slow@example.com"]["Message-ID"] == results["message_id"].iloc[0]
    )


def test_bcc_in_headers_points_to_bcc_option():
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.ConfigurationError, match="bcc="):
        mailkit.validate(
            df, subject="Hi", body="x", sender=SENDER, headers={"Bcc": "x@example.com"}
        )


@pytest.mark.parametrize("name", ["Resent-Bcc", "bcc", "To", "Content-Type"])
def test_reserved_header_rejected(name):
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(
        mailkit.ConfigurationError, match="cannot be set through headers="
    ):
        mailkit.validate(df, subject="Hi", body="x", sender=SENDER, headers={name: "v"})


def test_invalid_header_name_rejected():
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.ConfigurationError, match="Invalid header name"):
        mailkit.validate(
            df, subject="Hi", body="x", sender=SENDER, headers={"X Bad": "v"}
        )


def test_header_classes_are_made_once_per_name():
    registry = SEVEN_BIT_POLICY.header_factory
    assert registry["Subject"] is registry["subject"]
    assert registry["X-Campaign"] is registry["x-campaign"]
    assert registry["Subject"] is not registry["X-Campaign"]
    message = EmailMessage(policy=SEVEN_BIT_POLICY)
    message["Subject"] = "First"
    other = EmailMessage(policy=SEVEN_BIT_POLICY)
    other["Subject"] = "Second"
    assert type(message["Subject"]) is type(other["Subject"])
    assert (str(message["Subject"]), str(other["Subject"])) == ("First", "Second")


def test_header_class_cache_follows_map_to_type():
    registry = headers._registry()
    before = registry["x-list"]
    registry.map_to_type("x-list", headers.AngleListHeader)
    after = registry["x-list"]
    assert after is not before
    assert issubclass(after, headers.AngleListHeader)
