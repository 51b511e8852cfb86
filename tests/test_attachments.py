"""Attachments and inline images on the wire: names, structure, types, sizes."""

from __future__ import annotations

import hashlib
import os
import re

import pandas as pd
import pytest

import mailkit
from mailkit.testing import Extensions, FaultSMTPServer
from wire import assert_wire_form, parse

SENDER = "Accounts team <accounts@example.com>"

# A 1x1 PNG image.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201e2b42d8c0000000049454e44ae426082"
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_c06_non_ascii_filenames(server, tmp_path):
    report = tmp_path / "Prüfbericht Q1 März.pdf"
    report.write_bytes(b"%PDF-1.4\n" + os.urandom(2000))
    chinese = tmp_path / "报告.xlsx"
    chinese.write_bytes(os.urandom(3000))
    df = pd.DataFrame(
        {
            "email": ["a@example.com", "b@example.com"],
            "quarter": ["Q1", None],
            "file": [None, str(chinese)],
        }
    )
    mailkit.send_bulk(
        df,
        subject="Report",
        body="See attached.\n",
        sender=SENDER,
        attachments=(
            "{% if quarter %}" + str(tmp_path) + "/Prüfbericht {{ quarter }} März.pdf"
            "{% else %}{{ file }}{% endif %}"
        ),
        allow_empty=["quarter", "file"],
        mode="fast",
        smtp=server.url,
    )
    by_recipient = {m.recipients[0]: m.data for m in server.messages}
    for recipient, path in (("a@example.com", report), ("b@example.com", chinese)):
        data = by_recipient[recipient]
        assert_wire_form(data)
        assert b"filename*=utf-8''" in data or b"filename*0*=utf-8''" in data
        (attachment,) = list(parse(data).iter_attachments())
        assert attachment.get_filename() == path.name
        assert attachment.get_content_disposition() == "attachment"
        assert _sha256(attachment.get_payload(decode=True)) == _sha256(
            path.read_bytes()
        )


def _c07_files(tmp_path):
    files = {
        "report.csv": b"id,amount\r\n1,12\r\n2,7\r\n",
        "notes.txt": "Grüße\nline two\n".encode("utf-8"),
        "INVOICE.PDF": b"%PDF-1.4\n" + os.urandom(500),
        "blob.xyz": os.urandom(300),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "logo.png").write_bytes(PNG)
    return files


def test_c07_mime_structure_and_types(server, tmp_path):
    files = _c07_files(tmp_path)
    paths = "; ".join(str(tmp_path / name) for name in files)
    df = pd.DataFrame({"email": ["a@example.com"], "files": [paths]})
    results = mailkit.send_bulk(
        df,
        subject="Documents",
        body="Text part\n",
        html='<p>HTML part</p><img src="cid:logo" alt="Logo">',
        sender=SENDER,
        attachments="files",
        inline_images={"logo": tmp_path / "logo.png"},
        smtp=server.url,
    )
    data = server.messages[0].data
    assert_wire_form(data)
    message = parse(data)
    assert message.get_content_type() == "multipart/mixed"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == [
        "multipart/alternative",
        "text/csv",
        "text/plain",
        "application/pdf",
        "application/octet-stream",
    ]
    alternative = list(parts[0].iter_parts())
    assert [part.get_content_type() for part in alternative] == [
        "text/plain",
        "multipart/related",
    ]
    related = list(alternative[1].iter_parts())
    assert [part.get_content_type() for part in related] == ["text/html", "image/png"]
    assert related[1]["Content-ID"] == "<logo>"
    assert related[1].get_content_disposition() == "inline"
    assert related[1].get_payload(decode=True) == PNG
    for part, (name, content) in zip(parts[1:], files.items()):
        assert part.get_content_disposition() == "attachment"
        assert part.get_filename() == name
        assert part.get_payload(decode=True) == content
    assert results["attachments"].iloc[0] == (
        "report.csv (text/csv, 22 bytes); notes.txt (text/plain, 17 bytes); "
        "INVOICE.PDF (application/pdf, 509 bytes); "
        "blob.xyz (application/octet-stream, 300 bytes); "
        "logo.png (image/png, 70 bytes)"
    )


def test_c07_type_override_per_row_and_by_extension(server, tmp_path):
    files = _c07_files(tmp_path)
    df = pd.DataFrame(
        {
            "email": ["a@example.com", "b@example.com"],
            "files": [str(tmp_path / "blob.xyz"), str(tmp_path / "report.csv")],
            "types": ["chemical/x-xyz", ""],
        }
    )
    mailkit.send_bulk(
        df,
        subject="Hi",
        body="x\n",
        sender=SENDER,
        attachments="files",
        attachment_types="types",
        allow_empty=["types"],
        mode="fast",
        smtp=server.url,
    )
    by_recipient = {m.recipients[0]: parse(m.data) for m in server.messages}
    (blob,) = by_recipient["a@example.com"].iter_attachments()
    assert blob.get_content_type() == "chemical/x-xyz"
    (csv,) = by_recipient["b@example.com"].iter_attachments()
    assert csv.get_content_type() == "text/csv"
    assert csv.get_payload(decode=True) == files["report.csv"]

    server.clear()
    mailkit.send_bulk(
        df.iloc[:1],
        subject="Hi",
        body="x\n",
        sender=SENDER,
        attachments="files",
        attachment_types={".XYZ": "application/x-blob"},
        smtp=server.url,
    )
    (blob,) = parse(server.messages[0].data).iter_attachments()
    assert blob.get_content_type() == "application/x-blob"


def test_missing_attachment_is_preflight_problem(server, tmp_path):
    present = tmp_path / "here.pdf"
    present.write_bytes(b"%PDF")
    df = pd.DataFrame(
        {
            "email": ["a@example.com", "b@example.com"],
            "files": [str(present), f"{present}; {tmp_path / 'gone.pdf'}"],
        },
        index=["r1", "r2"],
    )
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            df,
            subject="Hi",
            body="x\n",
            sender=SENDER,
            attachments="files",
            smtp=server.url,
        )
    problems = caught.value.problems
    assert problems["row"].tolist() == ["r2"]
    assert problems["column"].tolist() == ["files"]
    assert "gone.pdf" in problems["problem"].iloc[0]
    assert "cannot be read" in problems["problem"].iloc[0]
    assert server.sessions == 0


def test_inline_images_need_html():
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.ConfigurationError, match="needs an HTML body"):
        mailkit.validate(
            df, subject="Hi", body="x", sender=SENDER, inline_images={"logo": "logo"}
        )


def test_invalid_attachment_type_rejected():
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.ConfigurationError, match="not a content type"):
        mailkit.validate(
            df,
            subject="Hi",
            body="x",
            sender=SENDER,
            attachments=[],
            attachment_types={".xyz": "pdf"},
        )


def _sized_rows(tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(1_000))
    large = tmp_path / "large.bin"
    large.write_bytes(os.urandom(120_000))
    return pd.DataFrame(
        {
            "email": [f"user{i}@example.com" for i in range(4)],
            "file": [str(small), str(small), str(large), str(small)],
        }
    )


def test_c08_over_server_size_fails_row_before_mail(tmp_path):
    df = _sized_rows(tmp_path)
    with FaultSMTPServer(max_message_size=100_000) as server:
        results = mailkit.send_bulk(
            df,
            subject="Hi",
            body="x\n",
            sender=SENDER,
            attachments="file",
            mode="fast",
            smtp=server.url,
        )
        mail_commands = [
            command
            for session in server.sessions
            for command in session.commands
            if command[0] == "MAIL"
        ]
    assert results["status"].tolist() == ["sent", "sent", "failed", "sent"]
    error = results["error"].iloc[2]
    assert re.search(
        r"The message is \d+ bytes, over the server's limit \(SIZE\) of "
        r"100000 bytes",
        error,
    )
    assert results["attempts"].iloc[2] == 0
    assert len(mail_commands) == 3
    assert sorted(m.rcpt_tos[0] for m in server.messages) == [
        "user0@example.com",
        "user1@example.com",
        "user3@example.com",
    ]


def test_c08_size_zero_means_no_limit(tmp_path):
    df = _sized_rows(tmp_path)
    with FaultSMTPServer(extensions=Extensions(size_value=0)) as server:
        results = mailkit.send_bulk(
            df,
            subject="Hi",
            body="x\n",
            sender=SENDER,
            attachments="file",
            mode="fast",
            smtp=server.url,
        )
    assert (results["status"] == "sent").all()
    assert len(server.messages) == 4


def test_c08_max_message_size_preflight(tmp_path, server):
    df = _sized_rows(tmp_path)
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(
            df,
            subject="Hi",
            body="x\n",
            sender=SENDER,
            attachments="file",
            max_message_size=100_000,
            smtp=server.url,
        )
    problems = caught.value.problems
    assert problems["row"].tolist() == [2]
    assert "over max_message_size=100000" in problems["problem"].iloc[0]
    assert server.sessions == 0


def test_c08_reply_552_is_permanent(tmp_path):
    df = _sized_rows(tmp_path)
    server = FaultSMTPServer(
        max_message_size=100_000, extensions=Extensions(size=False)
    )
    with server:
        results = mailkit.send_bulk(
            df,
            subject="Hi",
            body="x\n",
            sender=SENDER,
            attachments="file",
            mode="fast",
            retry_backoff=0.01,
            smtp=server.url,
        )
    assert results["status"].tolist() == ["sent", "sent", "failed", "sent"]
    assert results["smtp_code"].iloc[2] == 552
    assert results["attempts"].iloc[2] == 1
    accepted = sorted(m.rcpt_tos[0] for m in server.messages if m.accepted)
    assert accepted == ["user0@example.com", "user1@example.com", "user3@example.com"]
