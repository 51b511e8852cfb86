"""Preview gives the sent bytes; dry runs build every row and connect to nothing."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pytest

import mailkit
from wire import parse

SENDER = "Accounts team <accounts@example.com>"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _options(tmp_path):
    attachment = tmp_path / "Rechnung März.pdf"
    attachment.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    return dict(
        subject=EXAMPLES / "subject.txt",
        body=EXAMPLES / "body.txt",
        html=EXAMPLES / "body.html",
        sender=SENDER,
        cc="Controller <controller@example.com>",
        bcc="audit@example.com",
        attachments=[attachment],
    )


def test_preview_equals_sent_bytes(server, recipients, tmp_path):
    options = _options(tmp_path)
    df = recipients.head(3)
    mailkit.send_bulk(df, mode="fast", smtp=server.url, **options)
    assert len(server.messages) == 3
    for label in df.index:
        received = next(
            m for m in server.messages if m.recipients[0] == df.loc[label, "email"]
        )
        sent = parse(received.data)
        shown = mailkit.preview(
            df,
            label,
            message_id=sent["Message-ID"],
            date=sent["Date"].datetime,
            **options,
        )
        assert shown.data == received.data
        assert shown.recipients == received.recipients
        assert shown.envelope_from == received.envelope_from


def test_preview_object(recipients, tmp_path):
    shown = mailkit.preview(recipients, 0, **_options(tmp_path))
    assert shown.recipients == (
        "zoe.angstrom@example.org",
        "controller@example.com",
        "audit@example.com",
    )
    headers = dict(shown.headers)
    assert headers["To"] == "zoe.angstrom@example.org"
    assert "Bcc" not in headers
    assert shown.tree.splitlines() == [
        "multipart/mixed",
        "  multipart/alternative",
        "    text/plain (quoted-printable)",
        "    text/html (quoted-printable)",
        "  application/pdf (filename='Rechnung März.pdf', base64)",
    ]
    assert shown.text.startswith("Hello Zoë,\n")
    assert "INV-2027-0001" in shown.html
    assert shown.attachments == [
        {
            "filename": "Rechnung März.pdf",
            "content_type": "application/pdf",
            "size": 2057,
            "content_id": None,
        }
    ]
    assert shown.size == len(shown.data)
    assert "Preview(row=0" in repr(shown)


def test_preview_repr_html(recipients, tmp_path):
    shown = mailkit.preview(
        recipients.assign(first_name="<script>alert(1)</script>"),
        0,
        **_options(tmp_path),
    )
    page = shown._repr_html_()
    frame = re.search(r'<iframe sandbox="" srcdoc="([^"]*)"', page)
    assert frame is not None
    assert "INV-2027-0001" in html.unescape(frame.group(1))
    assert "<script>" not in page
    assert "Rechnung März.pdf (application/pdf, 2057 bytes)" in page
    assert "<th style='text-align:left;padding:2px 8px'>Subject</th>" in page
    assert "Hello &lt;script&gt;" in page


def test_preview_inline_image_shown_as_data_url(tmp_path):
    image = tmp_path / "logo.gif"
    image.write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    df = pd.DataFrame({"email": ["a@example.com"]})
    shown = mailkit.preview(
        df,
        subject="Hi",
        html='<img src="cid:logo">',
        sender=SENDER,
        inline_images={"logo": image},
    )
    page = html.unescape(shown._repr_html_())
    assert 'src="data:image/gif;base64,R0lGODlh' in page
    assert "cid:logo" in shown.html


def test_preview_smtputf8_option():
    df = pd.DataFrame({"email": ["jörg@example.com"]})
    with pytest.raises(mailkit.MessageError, match="SMTPUTF8"):
        mailkit.preview(df, subject="Hi", body="x", sender=SENDER)
    shown = mailkit.preview(df, subject="Hi", body="x", sender=SENDER, smtputf8=True)
    assert shown.mail_options == ("SMTPUTF8",)
    assert "To: jörg@example.com\r\n".encode() in shown.data


def test_preview_raises_for_problem_row():
    df = pd.DataFrame({"email": ["a@example.com", "bad"]})
    with pytest.raises(mailkit.ValidationError, match="row 1"):
        mailkit.preview(df, 1, subject="Hi", body="x", sender=SENDER)
    with pytest.raises(KeyError, match="No row with index label 7"):
        mailkit.preview(df, 7, subject="Hi", body="x", sender=SENDER)


def test_dry_run_connects_to_nothing(server, tmp_path):
    df = pd.DataFrame(
        {
            "email": [
                "a@example.com",
                "jörg@example.com",
                "c@example.com",
                "A@example.com",
            ],
            "name": ["Ann", "Jörg", None, "Ann again"],
        },
        index=list("wxyz"),
    )
    results = mailkit.send_bulk(
        df,
        subject="Hi {{ name }}",
        body="Hello {{ name }}\n",
        sender=SENDER,
        smtp=server.url,
        dry_run=True,
        skip_empty=["name"],
        duplicates="skip",
    )
    assert server.sessions == 0
    assert server.messages == []
    assert results.attrs["dry_run"] is True
    assert results.attrs["server"] is None
    assert list(results.index) == list("wxyz")
    assert results["status"].tolist() == ["skipped", "failed", "skipped", "skipped"]
    assert results["error"].iloc[0].startswith("Dry run: the message was built")
    assert results["message_id"].iloc[0].endswith("@example.com>")
    assert "SMTPUTF8" in results["error"].iloc[1]
    assert "'name' cell is empty" in results["error"].iloc[2]
    assert "already receives row 'w'" in results["error"].iloc[3]
    assert results["attempts"].tolist() == [0, 0, 0, 0]
    assert mailkit.last_results is results


def test_dry_run_needs_no_server_settings(monkeypatch):
    monkeypatch.delenv("MAILKIT_SMTP_URL", raising=False)
    df = pd.DataFrame({"email": ["a@example.com"]})
    results = mailkit.send_bulk(df, subject="Hi", body="x", sender=SENDER, dry_run=True)
    assert results["status"].tolist() == ["skipped"]


def test_dry_run_still_raises_preflight_problems(server):
    df = pd.DataFrame({"email": ["not-an-address"]})
    with pytest.raises(mailkit.ValidationError):
        mailkit.send_bulk(
            df, subject="Hi", body="x", sender=SENDER, smtp=server.url, dry_run=True
        )
    assert server.sessions == 0
