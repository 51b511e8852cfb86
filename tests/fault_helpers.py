"""Helpers for the delivery tests that run against mailkit.testing.FaultSMTPServer."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from typing import Any, Iterable

import pandas as pd

import mailkit
from mailkit.testing import FaultSMTPServer

SENDER = "Billing <billing@example.com>"
SENDER_ADDRESS = "billing@example.com"


def frame(count: int, *, start: int = 0) -> pd.DataFrame:
    """Return ``count`` rows with distinct recipients row{start}@example.com, ..."""
    return pd.DataFrame(
        {
            "email": [f"row{i}@example.com" for i in range(start, start + count)],
            "name": [f"Name {i}" for i in range(start, start + count)],
        }
    )


def send(df: pd.DataFrame, smtp: Any, **options: Any) -> pd.DataFrame:
    """Call send_bulk with short templates and no progress bar."""
    options.setdefault("subject", "Invoice for {{ name }}")
    options.setdefault("body", "Hello {{ name }}, your invoice is attached.")
    options.setdefault("sender", SENDER)
    options.setdefault("progress", False)
    options.setdefault("retry_backoff", 0.02)
    return mailkit.send_bulk(df, smtp=smtp, **options)


def accepted_recipients(server: FaultSMTPServer) -> Counter:
    """Count accepted messages per envelope recipient, as the server recorded them."""
    return Counter(rcpt for message in server.messages for rcpt in message.rcpt_tos)


def commands(server: FaultSMTPServer, verb: str) -> list[str]:
    """Return the arguments of every ``verb`` command over all sessions, in order."""
    return [
        argument
        for session in server.sessions
        for seen_verb, argument in session.commands
        if seen_verb == verb
    ]


def rcpt_count(server: FaultSMTPServer, address: str) -> int:
    """Return how many RCPT commands named ``address``."""
    return sum(1 for argument in commands(server, "RCPT") if f"<{address}>" in argument)


def message_ids(server: FaultSMTPServer) -> list[str]:
    """Return the Message-ID header of every accepted message."""
    return [
        email.message_from_bytes(message.data, policy=email.policy.default)["Message-ID"]
        for message in server.messages
    ]


def admitted_sessions(server: FaultSMTPServer) -> list:
    """Return the sessions that got a 220 greeting (not refused at connect)."""
    return [
        session
        for session in server.sessions
        if session.replies and session.replies[0].startswith("220")
    ]


def statuses(results: pd.DataFrame) -> dict[str, int]:
    """Return the non-zero status counts of a results DataFrame."""
    counts = results["status"].value_counts()
    return {status: int(count) for status, count in counts.items() if count}


def max_in_window(times: Iterable[float], window: float) -> int:
    """Return the largest number of ``times`` within any ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, value in enumerate(ordered):
        while value - ordered[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best
