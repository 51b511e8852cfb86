"""Reply classification, retries, timeouts and quota stops, on the server's record."""

from __future__ import annotations

import math
import threading
import time

import pandas as pd
import pytest

import mailkit
from fault_helpers import (
    accepted_recipients,
    commands,
    frame,
    message_ids,
    rcpt_count,
    send,
    statuses,
)
from mailkit.testing import (
    FaultSMTPServer,
    Rule,
    defer_recipient,
    drop_at,
    quota_exceeded_after,
    reject_recipient,
    stall_at,
)


def _contains(address: str):
    """Rule predicate: the message data at EOD is addressed to ``address``."""
    return lambda context: context.data is not None and address.encode() in context.data


# -- C21: refused recipients ---------------------------------------------------------


def test_c21_refused_recipients_each_row_gets_status():
    df = pd.DataFrame(
        {
            "email": [
                "ok0@example.com",
                "gone@example.com",
                "ok2@example.com",
                "busy@example.com",
                "to4@example.com; cc-gone@example.com",
            ],
            "name": ["A", "B", "C", "D", "E"],
        }
    )
    rules = [
        reject_recipient("gone@example.com"),
        defer_recipient("busy@example.com", times=1),
        reject_recipient("cc-gone@example.com"),
    ]
    with FaultSMTPServer(rules=rules) as server:
        results = send(df, server.url, max_workers=2)

    gone = results.loc[1]
    assert gone["status"] == "failed"
    assert gone["smtp_code"] == 550
    assert "5.1.1" in gone["smtp_reply"]
    assert gone["attempts"] == 1
    assert rcpt_count(server, "gone@example.com") == 1

    busy = results.loc[3]
    assert busy["status"] == "sent"
    assert busy["attempts"] == 2
    assert rcpt_count(server, "busy@example.com") == 2

    partial = results.loc[4]
    assert partial["status"] == "partial"
    assert "cc-gone@example.com (550" in partial["refused"]
    assert "cc-gone@example.com" in partial["error"]

    assert statuses(results) == {"sent": 3, "failed": 1, "partial": 1}
    assert accepted_recipients(server) == {
        "ok0@example.com": 1,
        "ok2@example.com": 1,
        "busy@example.com": 1,
        "to4@example.com": 1,
    }
    assert (results.loc[results["status"] != "sent", "error"] != "").all()


def test_c21_deferred_after_retries_keeps_message_id():
    rules = [defer_recipient("busy@example.com", times=10)]
    df = pd.DataFrame({"email": ["busy@example.com", "ok@example.com"], "name": ["B", "O"]})
    with FaultSMTPServer(rules=rules) as server:
        results = send(df, server.url, mode="fast", max_retries=2)

    busy = results.loc[0]
    assert busy["status"] == "deferred"
    assert busy["smtp_code"] == 451
    assert busy["attempts"] == 3
    assert rcpt_count(server, "busy@example.com") == 3
    assert results.loc[1, "status"] == "sent"
    assert "451" in busy["error"]


# -- unknown outcome, QUIT ------------------------------------------------------------


def test_lost_after_final_dot_is_unknown_and_not_retried():
    rules = [drop_at("EOD", times=1, transaction=2)]
    with FaultSMTPServer(rules=rules) as server:
        results = send(frame(3), server.url, mode="fast")

    row = results.loc[1]
    assert row["status"] == "unknown"
    assert row["attempts"] == 1
    assert "may have been delivered" in row["error"]
    assert rcpt_count(server, "row1@example.com") == 1
    received = [m for s in server.sessions for m in s.messages]
    assert [m.rcpt_tos for m in received].count(("row1@example.com",)) == 1
    assert statuses(results) == {"sent": 2, "unknown": 1}


def test_retry_unknown_with_journal_resends_same_message_id(tmp_path):
    # The first run loses the connection after the final "." of row 1; a second
    # run with the journal and retry_unknown=True sends it once more, with the
    # recorded Message-ID, and nothing else.
    journal = tmp_path / "campaign.sqlite"
    rules = [drop_at("EOD", times=1, transaction=2)]
    with FaultSMTPServer(rules=rules) as server:
        first = send(frame(3), server.url, mode="fast", journal=journal)
        second = send(frame(3), server.url, mode="fast", journal=journal, retry_unknown=True)

    assert first.loc[1, "status"] == "unknown"
    assert second.loc[1, "status"] == "sent"
    assert list(second["status"]) == ["skipped", "sent", "skipped"]
    received = [
        m for s in server.sessions for m in s.messages if m.rcpt_tos == ("row1@example.com",)
    ]
    assert len(received) == 2
    first_id, second_id = (
        mailkit.CapturedMessage("", (), m.data).message["Message-ID"] for m in received
    )
    assert first_id == second_id == first.loc[1, "message_id"]
    assert accepted_recipients(server) == {
        "row0@example.com": 1,
        "row1@example.com": 1,
        "row2@example.com": 1,
    }


@pytest.mark.parametrize(
    "rule",
    [Rule("QUIT", reply="554 5.3.0 Internal error"), drop_at("QUIT")],
    ids=["554 at QUIT", "dropped at QUIT"],
)
def test_error_at_quit_keeps_rows_sent(rule):
    with FaultSMTPServer(rules=[rule]) as server:
        results = send(frame(4), server.url, max_workers=2)
        # mailkit does not wait for the reply to QUIT, so the server may still be
        # reading it when send_bulk returns.
        server.wait_for_idle()

    assert statuses(results) == {"sent": 4}
    assert len(server.messages) == 4
    assert len(commands(server, "QUIT")) == len(server.sessions)


def test_stalled_quit_does_not_delay_batch():
    # The reply to QUIT is not awaited, so a server that never replies to it
    # costs the batch nothing. Waiting would last until the reply timeout.
    stall = 20.0
    with FaultSMTPServer(rules=[stall_at("QUIT", stall)], max_stall=stall) as server:
        started = time.monotonic()
        results = send(frame(4), f"{server.url}?timeout=15", max_workers=2)
        elapsed = time.monotonic() - started
        # The server reads each QUIT after send_bulk has returned.
        server.wait_until(lambda: len(commands(server, "QUIT")) == 2, timeout=5)
        sessions = len(server.sessions)

    assert statuses(results) == {"sent": 4}
    assert sessions == 2
    assert elapsed < stall / 2


# -- C19: timeouts ----------------------------------------------------------------------


def test_c19_server_without_greeting_times_out_before_any_row():
    rules = [stall_at("GREETING", math.inf, then_drop=True)]
    with FaultSMTPServer(rules=rules, max_stall=5) as server:
        url = f"smtp://127.0.0.1:{server.port}?connect_timeout=0.3"
        started = time.monotonic()
        with pytest.raises(mailkit.SMTPTimeoutError) as caught:
            send(frame(3), url)
        elapsed = time.monotonic() - started

    assert isinstance(caught.value, TimeoutError)
    assert "sent no greeting within 0.3 s" in str(caught.value)
    assert "implicit TLS" in str(caught.value)
    assert elapsed < 3
    assert not commands(server, "MAIL")


def test_c19_stall_after_rcpt_fails_only_that_row():
    # RCPT for one address never gets a reply; the other workers go on.
    df = frame(20)
    stalled = "row7@example.com"
    rules = [Rule("RCPT", address=stalled, stall=math.inf)]
    with FaultSMTPServer(rules=rules, max_stall=5) as server:
        url = f"smtp://127.0.0.1:{server.port}?timeout=0.4"
        results = send(df, url, max_workers=4, max_retries=1)

    row = results.loc[7]
    assert row["status"] == "deferred"
    assert "did not reply within 0.4 s" in row["error"]
    assert "not delivered" in row["error"]
    assert row["attempts"] == 2
    assert rcpt_count(server, stalled) == 2
    assert statuses(results) == {"sent": 19, "deferred": 1}
    others = {address: 1 for address in df["email"] if address != stalled}
    assert accepted_recipients(server) == others


def test_c19_stall_after_final_dot_is_unknown():
    stalled = "row2@example.com"
    rules = [Rule("EOD", stall=math.inf, when=_contains(stalled))]
    with FaultSMTPServer(rules=rules, max_stall=5) as server:
        url = f"smtp://127.0.0.1:{server.port}?timeout=0.4"
        results = send(frame(6), url, max_workers=2)

    row = results.loc[2]
    assert row["status"] == "unknown"
    assert "did not reply within 0.4 s after the message was sent" in row["error"]
    assert row["attempts"] == 1
    assert rcpt_count(server, stalled) == 1
    assert statuses(results) == {"sent": 5, "unknown": 1}


def test_c19_timeouts_are_finite_and_configurable():
    config = mailkit.SMTPConfig.from_url("smtp://127.0.0.1:25?timeout=2&connect_timeout=1")
    assert config.timeout == 2
    assert config.connect_timeout == 1
    default = mailkit.SMTPConfig("127.0.0.1")
    assert 0 < default.timeout < math.inf
    assert 0 < default.connect_timeout < math.inf


# -- quota ----------------------------------------------------------------------------


def test_quota_reply_stops_run_and_names_rows_to_resend():
    df = frame(10)
    with FaultSMTPServer(rules=[quota_exceeded_after(3)]) as server:
        with pytest.raises(mailkit.BatchStopped) as caught:
            send(df, server.url, mode="fast")

    results = caught.value.results
    assert "sending quota is used up (550 5.4.5" in str(caught.value)
    assert statuses(results) == {"sent": 3, "deferred": 1, "skipped": 6}
    assert len(server.messages) == 3
    sent = set(results.index[results["status"] == "sent"])
    assert {m.rcpt_tos[0] for m in server.messages} == {df.loc[i, "email"] for i in sent}
    resend = results[results["status"].isin(["deferred", "skipped"])]
    assert len(resend) == 7
    assert resend["error"].str.contains("quota").all()
    assert len(commands(server, "MAIL")) == 4
    assert results.attrs["stop_reason"].startswith("the server reports")


def test_quota_with_several_workers_sends_nothing_twice():
    df = frame(40)
    rules = [quota_exceeded_after(12)]
    with FaultSMTPServer(rules=rules, delays={"eod": 0.01}) as server:
        with pytest.raises(mailkit.BatchStopped) as caught:
            send(df, server.url, max_workers=4)

    results = caught.value.results
    counts = statuses(results)
    # Transactions that passed MAIL before the 12th message was accepted still
    # go through, so the server may accept a few more than 12.
    assert counts["sent"] == len(server.messages)
    assert 12 <= counts["sent"] < 16
    assert counts["sent"] + counts.get("deferred", 0) + counts.get("skipped", 0) == 40
    assert accepted_recipients(server) == {
        df.loc[i, "email"]: 1 for i in results.index[results["status"] == "sent"]
    }
    assert len(set(message_ids(server))) == counts["sent"]


def test_quota_row_status_deferred_with_reply():
    df = frame(2)
    with FaultSMTPServer(rules=[quota_exceeded_after(0)]) as server:
        with pytest.raises(mailkit.BatchStopped) as caught:
            send(df, server.url, mode="fast")

    results = caught.value.results
    first = results.loc[0]
    assert first["status"] == "deferred"
    assert first["smtp_code"] == 550
    assert first["smtp_reply"] == "5.4.5 Daily sending quota exceeded"
    assert results.loc[1, "status"] == "skipped"
    assert mailkit.last_results is results
    assert not server.messages


# -- stop while rows wait for a retry -------------------------------------------------


def test_stop_during_retry_wait_keeps_deferred_result():
    rules = [defer_recipient("row0@example.com", times=10)]
    token = mailkit.StopToken()
    with FaultSMTPServer(rules=rules) as server:
        timer = threading.Timer(0.3, token.set)
        timer.start()
        try:
            results = send(frame(1), server.url, mode="fast", retry_backoff=5.0, stop=token)
        finally:
            timer.cancel()

    row = results.loc[0]
    assert row["status"] == "deferred"
    assert row["attempts"] == 1
    assert "not tried again because stopped by the user" in row["error"]
