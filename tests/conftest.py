"""Fixtures shared by the test suite: capture servers on 127.0.0.1 and example data."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest

import mailkit
from mailkit.cli import read_recipients
from mailkit.logins import recent_logins

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SENDER = "Accounts team <accounts@example.com>"


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    monkeypatch.setenv("MAILKIT_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    before = set(threading.enumerate())
    yield
    leaked = [
        thread
        for thread in threading.enumerate()
        if thread not in before and thread.name.startswith("mailkit-") and thread.is_alive()
    ]
    assert not leaked, f"threads still running after the test: {leaked}"


@pytest.fixture(autouse=True)
def _first_login_gate():
    # Every test starts as a new process would, with no recent login that lets
    # a batch skip waiting for its first login.
    recent_logins.clear()


@pytest.fixture
def server(tmp_path):
    with mailkit.LocalSMTPServer(maildir=tmp_path / "maildir") as running:
        yield running


@pytest.fixture
def recipients() -> pd.DataFrame:
    return read_recipients(EXAMPLES / "recipients.csv")


@pytest.fixture
def templates() -> dict:
    return {
        "subject": EXAMPLES / "subject.txt",
        "body": EXAMPLES / "body.txt",
        "html": EXAMPLES / "body.html",
        "sender": SENDER,
    }
