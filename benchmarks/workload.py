"""The messages and DataFrames that every benchmark sends.

All designs send the same bytes: :func:`prebuilt_messages` builds them once with
the standard ``email`` package, so the baselines measure the wire and not the
composing. :func:`recipients_frame` and :data:`TEMPLATES` give the end-to-end
workload, where mailkit renders the same kind of message from each row.
"""

from __future__ import annotations

import email.policy
import textwrap
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, localtime, make_msgid

import pandas as pd

__all__ = [
    "MESSAGE_SIZE",
    "Prebuilt",
    "SENDER",
    "TEMPLATES",
    "prebuilt_messages",
    "recipients_frame",
]

#: Approximate size in bytes of every benchmark message, headers included.
MESSAGE_SIZE = 2048
SENDER = "Benchmarks <bench@example.com>"
SENDER_ADDRESS = "bench@example.com"
RECIPIENT_DOMAIN = "example.net"

_FILLER = (
    "Thank you for your order. This paragraph pads the message to the size of a "
    "typical personalised notice, so that the benchmark moves realistic bytes.\n"
)

#: Templates for the end-to-end workload: a text and an HTML part, together about
#: 2.4 KB once rendered and serialized.
TEMPLATES = {
    "subject": "Your order {{ order_id }}, {{ first_name }}",
    "body": (
        "Hello {{ first_name }},\n\nyour order {{ order_id }} of {{ amount }} EUR "
        "has shipped.\n\n" + _FILLER * 6 + "\nRegards,\nThe benchmark team\n"
    ),
    "html": (
        "<p>Hello {{ first_name }},</p><p>your order <b>{{ order_id }}</b> of "
        "{{ amount }} EUR has shipped.</p>" + ("<p>" + _FILLER.strip() + "</p>") * 3
    ),
    "sender": SENDER,
}


@dataclass(frozen=True)
class Prebuilt:
    """One serialized message with its envelope."""

    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes


def recipient_address(index: int) -> str:
    return f"user{index}@{RECIPIENT_DOMAIN}"


def recipients_frame(rows: int) -> pd.DataFrame:
    """Return a DataFrame of ``rows`` recipients with the columns the templates use."""
    if rows < 0:
        raise ValueError(f"Invalid row count {rows!r}: use 0 or more.")
    positions = range(rows)
    return pd.DataFrame(
        {
            "email": [recipient_address(index) for index in positions],
            "first_name": [f"Name{index}" for index in positions],
            "order_id": [f"A{index:07d}" for index in positions],
            "amount": [f"{(index % 997) + 0.5:.2f}" for index in positions],
        }
    )


def _message(index: int, size: int) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = SENDER
    message["To"] = recipient_address(index)
    message["Subject"] = f"Your order A{index:07d}"
    message["Date"] = format_datetime(localtime())
    message["Message-ID"] = make_msgid(domain="example.com")
    message.set_content("", cte="7bit")
    remaining = size - len(message.as_bytes())
    lines = []
    filler = textwrap.wrap(_FILLER * 40, width=70)
    while remaining > 2 and filler:
        line = filler.pop()[: remaining - 2]
        lines.append(line)
        remaining -= len(line) + 2
    message.set_content("\n".join(lines) + "\n", cte="7bit")
    return message.as_bytes()


def prebuilt_messages(count: int, size: int = MESSAGE_SIZE) -> list[Prebuilt]:
    """Return ``count`` serialized messages of about ``size`` bytes, CRLF line ends.

    Each message has its own recipient and Message-ID, like a real batch.
    """
    if count < 0:
        raise ValueError(f"Invalid message count {count!r}: use 0 or more.")
    return [
        Prebuilt(SENDER_ADDRESS, (recipient_address(index),), _message(index, size))
        for index in range(count)
    ]
