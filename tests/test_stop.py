"""send_bulk(stop=...): stopping a batch from another thread."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from delayed_smtp import DelayedSMTPServer

import mailkit
from mailkit.testing import FaultSMTPServer, Rule

SENDER = "Accounts team <accounts@example.com>"
USER_STOP_ERROR = "Not sent: stopped by the user."


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"email": [f"user{i}@example.com" for i in range(rows)]})


def _send(df, smtp, **options):
    return mailkit.send_bulk(df, subject="Hi", body="Body", sender=SENDER, smtp=smtp, **options)


def test_stop_after_third_row_safe_mode(server):
    token = mailkit.StopToken()

    def stop_after_three(done, total, row):
        if done == 3:
            token.set()

    results = _send(
        _frame(8), server.url, mode="safe", delay=0.3, stop=token,
        progress_callback=stop_after_three,
    )

    assert results["status"].tolist() == ["sent"] * 3 + ["skipped"] * 5
    assert (results.loc[results["status"] == "skipped", "error"] == USER_STOP_ERROR).all()
    assert results.attrs["stop_reason"] == "stopped by the user"
    received = sorted(m.recipients[0] for m in server.messages)
    assert received == sorted(results.loc[results["status"] == "sent", "to"])


def test_stop_ends_a_long_pause(server):
    token = mailkit.StopToken()
    timer = threading.Timer(0.5, token.set)
    timer.start()
    started = time.monotonic()
    try:
        results = _send(_frame(3), server.url, mode="safe", delay=60, stop=token)
    finally:
        timer.cancel()
    elapsed = time.monotonic() - started

    # Without the stop, the pause before the second message alone lasts 60 s.
    assert elapsed < 30
    assert results["status"].tolist() == ["sent", "skipped", "skipped"]
    assert len(server.messages) == 1


def test_stop_set_before_the_call_sends_nothing(server):
    token = mailkit.StopToken()
    token.set()

    results = _send(_frame(4), server.url, stop=token)

    assert (results["status"] == "skipped").all()
    assert (results["error"] == USER_STOP_ERROR).all()
    assert server.sessions == 0
    assert server.messages == []


def test_stop_accepts_threading_event(server):
    event = threading.Event()

    def stop_after_two(done, total, row):
        if done == 2:
            event.set()

    results = _send(
        _frame(5), server.url, mode="safe", delay=0.3, stop=event,
        progress_callback=stop_after_two,
    )

    assert results["status"].tolist() == ["sent"] * 2 + ["skipped"] * 3
    assert len(server.messages) == 2


def test_stop_instant_mode_lets_transactions_finish():
    token = mailkit.StopToken()
    workers = 4

    def stop_after_first(done, total, row):
        if done == 1:
            token.set()

    with DelayedSMTPServer(delay=0.3) as slow:
        results = _send(
            _frame(40), slow.url, mode="instant", max_workers=workers, stop=token,
            progress_callback=stop_after_first,
        )
        received = slow.messages

    sent = results[results["status"] == "sent"]
    skipped = results[results["status"] == "skipped"]
    # Each worker finishes the message it had started when the stop came.
    assert 1 <= len(sent) <= 2 * workers
    assert len(sent) + len(skipped) == 40
    assert (skipped["error"] == USER_STOP_ERROR).all()
    assert sorted(m.recipients[0] for m in received) == sorted(sent["to"])


def test_stop_unset_sends_every_row(server):
    token = mailkit.StopToken()

    results = _send(_frame(6), server.url, stop=token)

    assert (results["status"] == "sent").all()
    assert results.attrs["stop_reason"] == ""
    assert len(server.messages) == 6


@pytest.mark.parametrize("value", [True, "stop", 1])
def test_stop_rejects_other_values(server, value):
    with pytest.raises(TypeError, match="StopToken"):
        _send(_frame(1), server.url, stop=value)
    assert server.sessions == 0


def test_stop_token_repr():
    token = mailkit.StopToken()
    assert repr(token) == "StopToken(set=False)"
    token.set()
    assert repr(token) == "StopToken(set=True)"


def test_stop_while_rows_finish_quickly():
    """A stop takes effect although a row finishes every few milliseconds, so
    the queue of finished rows is never empty for a whole poll period."""
    token = mailkit.StopToken()
    rows = 200

    def stop_after_five(done, total, row):
        if done == 5:
            token.set()

    with FaultSMTPServer(delays={"eod": 0.01}) as fault_server:
        results = _send(
            _frame(rows), fault_server.url, mode="instant", max_workers=4,
            stop=token, progress_callback=stop_after_five, progress=False,
        )
        fault_server.wait_for_idle()
        received = [m.rcpt_tos[0] for m in fault_server.messages]

    sent = results[results["status"] == "sent"]
    skipped = results[results["status"] == "skipped"]
    assert results.attrs["stop_reason"] == "stopped by the user"
    assert len(sent) < rows // 2
    assert len(sent) + len(skipped) == rows
    assert sorted(received) == sorted(sent["to"])


def test_stop_cuts_off_connections_waiting_for_greeting():
    """Connections that wait for a greeting carry no message, so a stop ends
    them at once instead of after the connect timeout."""
    token = mailkit.StopToken()
    connect_timeout = 10
    # The first session works; every later one gets no greeting.
    stall_later_greetings = Rule(
        "GREETING", stall=30, when=lambda context: context.session_id > 1
    )

    def stop_after_first(done, total, row):
        if done == 1:
            token.set()

    with FaultSMTPServer(
        rules=[stall_later_greetings], delays={"eod": 0.05}, max_stall=30
    ) as fault_server:
        smtp = mailkit.SMTPConfig(
            host=fault_server.host, port=fault_server.port,
            connect_timeout=connect_timeout,
        )
        started = time.monotonic()
        results = _send(
            _frame(20), smtp, mode="instant", max_workers=4, stop=token,
            progress_callback=stop_after_first, progress=False,
        )
        elapsed = time.monotonic() - started
        fault_server.wait_for_idle()
        received = [m.rcpt_tos[0] for m in fault_server.messages]
        later_sessions = fault_server.sessions[1:]

    assert elapsed < connect_timeout / 2
    assert results.attrs["stop_reason"] == "stopped by the user"
    assert results.attrs["throttle_events"] == 0
    assert later_sessions
    assert all(session.commands == [] for session in later_sessions)
    assert sorted(received) == sorted(results.loc[results["status"] == "sent", "to"])
