"""Pooled connections, pipelining, SIZE and reconnects, checked on the server's record.

Every test runs against mailkit.testing.FaultSMTPServer on 127.0.0.1 and asserts
on the commands and messages the server received.
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from fault_helpers import (
    accepted_recipients,
    admitted_sessions,
    commands,
    frame,
    rcpt_count,
    send,
    statuses,
)
from mailkit.testing import Extensions, FaultSMTPServer, Rule


# -- pipelining (RFC 2920) ------------------------------------------------------------


def test_pipelining_sends_envelope_before_replies():
    # The server rejects the first MAIL. A pipelining client has already sent
    # RCPT and DATA by then; the server records them before the client's RSET.
    rules = [Rule("MAIL", reply="550 5.7.1 Sender rejected", transaction=1)]
    with FaultSMTPServer(rules=rules) as server:
        results = send(frame(1), server.url, mode="fast")

    verbs = [verb for verb, _ in server.sessions[0].commands]
    assert verbs[:5] == ["EHLO", "MAIL", "RCPT", "DATA", "RSET"]
    assert results["status"].iloc[0] == "failed"
    assert results["smtp_code"].iloc[0] == 550


def test_no_pipelining_waits_for_each_reply():
    rules = [Rule("MAIL", reply="550 5.7.1 Sender rejected", transaction=1)]
    extensions = Extensions(pipelining=False)
    with FaultSMTPServer(rules=rules, extensions=extensions) as server:
        results = send(frame(1), server.url, mode="fast")

    verbs = [verb for verb, _ in server.sessions[0].commands]
    assert verbs[:3] == ["EHLO", "MAIL", "RSET"]
    assert "RCPT" not in verbs
    assert results["status"].iloc[0] == "failed"


@pytest.mark.parametrize("pipelining", [True, False])
def test_each_row_sent_once_on_reused_connections(pipelining):
    df = frame(30)
    extensions = Extensions(pipelining=pipelining)
    with FaultSMTPServer(extensions=extensions) as server:
        results = send(df, server.url, max_workers=3)

    assert statuses(results) == {"sent": 30}
    assert accepted_recipients(server) == {address: 1 for address in df["email"]}
    assert len(server.sessions) == 3
    assert server.max_concurrent_sessions <= 3
    per_session = [len(session.messages) for session in server.sessions]
    assert sum(per_session) == 30
    assert max(per_session) > 1
    for session in server.sessions:
        assert [verb for verb, _ in session.commands].count("EHLO") == 1


def test_pipelined_partial_recipients():
    df = pd.DataFrame(
        {"email": ["to@example.com, cc-gone@example.com"], "name": ["Ann"]}
    )
    rules = [Rule("RCPT", reply="550 5.1.1 No such user", address="cc-gone@example.com")]
    with FaultSMTPServer(rules=rules) as server:
        results = send(df, server.url, mode="fast")

    assert [message.rcpt_tos for message in server.messages] == [("to@example.com",)]
    row = results.iloc[0]
    assert row["status"] == "partial"
    assert "cc-gone@example.com (550 5.1.1 No such user)" in row["refused"]


# -- C08: message size -----------------------------------------------------------------


def _frame_with_large_attachment(tmp_path, large_position: int, size: int) -> pd.DataFrame:
    # The attachment grows by a third under base64, as a spreadsheet would.
    report = tmp_path / "report.xlsx"
    report.write_bytes(bytes(range(256)) * (size // 256))
    df = frame(5)
    df["files"] = ""
    df.loc[large_position, "files"] = str(report)
    return df


def _send_with_files(df, url, **options):
    return send(df, url, attachments="files", allow_empty=["files"], **options)


def test_c08_size_over_limit_fails_before_mail(tmp_path):
    df = _frame_with_large_attachment(tmp_path, 3, 30_000)
    with FaultSMTPServer(max_message_size=26_000) as server:
        results = _send_with_files(df, server.url, max_workers=2)

    large = results.loc[3]
    assert large["status"] == "failed"
    assert "over the server's limit (SIZE) of 26000 bytes" in large["error"]
    assert large["attempts"] == 0
    assert large["smtp_code"] is pd.NA
    assert rcpt_count(server, "row3@example.com") == 0
    sizes = [int(argument.rsplit("SIZE=", 1)[1]) for argument in commands(server, "MAIL")]
    assert len(sizes) == 4
    assert max(sizes) < 26_000
    assert statuses(results) == {"sent": 4, "failed": 1}
    assert accepted_recipients(server) == {f"row{i}@example.com": 1 for i in (0, 1, 2, 4)}


def test_c08_552_from_server_is_permanent(tmp_path):
    # SIZE is not advertised, so the client cannot check; the server answers
    # the oversized data with 552 and the row must not be retried.
    df = _frame_with_large_attachment(tmp_path, 3, 30_000)
    extensions = Extensions(size=False)
    with FaultSMTPServer(max_message_size=26_000, extensions=extensions) as server:
        results = _send_with_files(df, server.url, mode="fast")

    large = results.loc[3]
    assert large["status"] == "failed"
    assert large["smtp_code"] == 552
    assert large["attempts"] == 1
    assert rcpt_count(server, "row3@example.com") == 1
    assert all("SIZE=" not in argument for argument in commands(server, "MAIL"))
    assert statuses(results) == {"sent": 4, "failed": 1}


@pytest.mark.parametrize("size_value", [0, None], ids=["SIZE 0", "bare SIZE"])
def test_c08_size_zero_or_bare_means_no_limit(tmp_path, size_value):
    df = _frame_with_large_attachment(tmp_path, 3, 30_000)
    extensions = Extensions(size=True, size_value=size_value)
    with FaultSMTPServer(extensions=extensions) as server:
        results = _send_with_files(df, server.url, mode="fast")

    ehlo_reply = server.sessions[0].replies
    expected = "250-SIZE 0" if size_value == 0 else "250-SIZE"
    assert expected in ehlo_reply
    assert statuses(results) == {"sent": 5}
    large = [m for m in server.messages if m.rcpt_tos == ("row3@example.com",)]
    assert len(large) == 1
    assert len(large[0].data) > 40_000
    assert large[0].declared_size == len(large[0].data)


# -- C16: connections dropped by the server ----------------------------------------------


def test_c16_reconnects_after_session_limit_and_idle_timeout(caplog):
    # The server closes a session with 421 at the fourth MAIL and drops
    # connections idle for 0.3 s. Rows 0-4 go back to back, then the rate
    # limit spaces the rest 0.45 s apart, longer than the idle timeout.
    caplog.set_level(logging.INFO, logger="mailkit")
    df = frame(10)
    with FaultSMTPServer(session_message_limit=3, idle_timeout=0.3) as server:
        results = send(df, server.url, mode="fast", rate=1 / 0.45, burst=5)

    assert statuses(results) == {"sent": 10}
    assert accepted_recipients(server) == {address: 1 for address in df["email"]}
    assert all(len(session.messages) <= 3 for session in server.sessions)
    reasons = [session.close_reason for session in server.sessions]
    assert "limit" in reasons
    assert "idle_timeout" in reasons
    assert results.attrs["reconnects"] >= 1
    assert results.attrs["connections_opened"] == len(server.sessions)
    assert "reconnecting" in caplog.text
    assert server.max_concurrent_sessions == 1


def test_c16_stale_connection_found_before_data():
    # The server drops the idle connection; the client finds out before DATA
    # and the message goes out once on a new connection.
    df = frame(4)
    with FaultSMTPServer(idle_timeout=0.2) as server:
        results = send(df, server.url, mode="safe", delay=0.35)

    assert statuses(results) == {"sent": 4}
    assert accepted_recipients(server) == {address: 1 for address in df["email"]}
    # No session received message data that it then dropped: the dead
    # connection was found before the final ".". When the server's idle timer
    # fires late, while a pipelined envelope is in flight, the row goes again
    # on a new connection, which counts a second attempt.
    for session in server.sessions:
        assert all(message.accepted for message in session.messages)
    assert (results["attempts"] <= 2).all()
    assert results.attrs["reconnects"] >= 1


def test_c16_max_messages_per_connection_recycles(caplog):
    caplog.set_level(logging.INFO, logger="mailkit")
    df = frame(9)
    with FaultSMTPServer(session_message_limit=3) as server:
        results = send(df, server.url, mode="fast", max_messages_per_connection=2)
        # mailkit does not wait for the reply to QUIT, so the server may still be
        # reading it when send_bulk returns.
        server.wait_for_idle()

    assert statuses(results) == {"sent": 9}
    assert [len(session.messages) for session in server.sessions] == [2, 2, 2, 2, 1]
    assert all(session.close_reason == "quit" for session in server.sessions)
    assert results.attrs["throttle_events"] == 0
    assert results.attrs["recycled_connections"] == 4
    assert "after 2 messages" in caplog.text


# -- C17: bounded pool, one login per session ------------------------------------------


def test_c17_default_pool_stays_small():
    df = frame(200)
    with FaultSMTPServer(credentials={"sender@example.com": "app-password"}, tls="none") as server:
        url = f"smtp://sender%40example.com:app-password@127.0.0.1:{server.port}"
        results = send(df, _insecure(url), max_workers=50)

    assert statuses(results) == {"sent": 200}
    assert accepted_recipients(server) == {address: 1 for address in df["email"]}
    assert len(server.sessions) <= 10
    assert server.max_concurrent_sessions <= 10
    assert server.login_attempt_count == len(server.sessions)
    assert results.attrs["peak_connections"] <= 10


def test_c17_adaptive_pool_finds_session_cap(caplog):
    caplog.set_level(logging.INFO, logger="mailkit")
    df = frame(200)
    server = FaultSMTPServer(
        credentials={"sender@example.com": "app-password"},
        concurrent_session_limit=10,
        login_attempt_limit=20,
        delays={"eod": 0.01},
    )
    with server:
        url = f"smtp://sender%40example.com:app-password@127.0.0.1:{server.port}"
        results = send(df, _insecure(url), max_workers=50, max_connections=20)

    assert statuses(results) == {"sent": 200}
    assert accepted_recipients(server) == {address: 1 for address in df["email"]}
    admitted = admitted_sessions(server)
    refused = [s for s in server.sessions if s.replies and s.replies[0].startswith("421")]
    assert refused, "the client never went over the session cap"
    assert all(len(session.auth_attempts) <= 1 for session in server.sessions)
    assert all(not session.auth_attempts for session in refused)
    assert max(len(session.messages) for session in admitted) > 1
    assert server.max_concurrent_sessions <= 20
    assert results.attrs["lowest_connection_limit"] <= 10
    assert results.attrs["throttle_events"] == len(refused)
    assert (results["attempts"] == 1).all()
    assert "session refused" in caplog.text


def test_c17_login_limit_backs_off_and_retries():
    # Only two AUTH commands per 0.5 s are allowed; the others get 454 4.7.0.
    df = frame(30)
    server = FaultSMTPServer(
        credentials={"sender@example.com": "app-password"},
        login_attempt_limit=2,
        login_window=0.5,
        delays={"eod": 0.01},
    )
    with server:
        url = f"smtp://sender%40example.com:app-password@127.0.0.1:{server.port}"
        results = send(df, _insecure(url), max_workers=6, max_connections=6)

    assert statuses(results) == {"sent": 30}
    assert accepted_recipients(server) == {address: 1 for address in df["email"]}
    replies = [reply for session in server.sessions for reply in session.replies]
    assert any(reply.startswith("454 4.7.0") for reply in replies)
    assert results.attrs["throttle_events"] >= 1
    assert (results["attempts"] == 1).all()


def _insecure(url: str):
    from mailkit import SMTPConfig

    return SMTPConfig.from_url(url, allow_insecure_auth=True)
