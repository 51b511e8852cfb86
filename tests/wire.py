"""Checks on the raw bytes a server received."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage


def parse(data: bytes) -> EmailMessage:
    """Parse with email.policy.default; UTF-8 header fields (RFC 6532) are read
    as text, because the bytes parser keeps them as undecoded surrogates."""
    if data.isascii():
        return email.message_from_bytes(data, policy=email.policy.default)
    return email.message_from_string(data.decode("utf-8"), policy=email.policy.default)


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def assert_wire_form(data: bytes, *, seven_bit: bool = True) -> None:
    """CRLF only, lines of at most 78 octets where they can fold, 7-bit unless
    ``seven_bit`` is False."""
    assert data.count(b"\n") == data.count(b"\r\n"), "bare LF in the message"
    assert data.count(b"\r") == data.count(b"\r\n"), "bare CR in the message"
    for line in data.split(b"\r\n"):
        if len(line) <= 78:
            continue
        # A header whose value is one token (the xlsx content type makes a
        # 79-octet Content-Type line) has no whitespace to fold at.
        value = line.partition(b": ")[2]
        assert value and b" " not in value, f"line of {len(line)} octets: {line!r}"
        assert len(line) <= 998, f"line of {len(line)} octets: {line[:100]!r}"
    if seven_bit:
        assert data.isascii(), "the message has 8-bit octets"


def text_of(part) -> str:
    """The decoded text of a part with LF line breaks.

    MIME sends text with CRLF line breaks (the canonical form, RFC 2046 section
    4.1.1), and get_content() keeps them after quoted-printable or base64.
    """
    return part.get_content().replace("\r\n", "\n")
