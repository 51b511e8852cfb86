"""The shared rate limit, throttling replies and adaptive concurrency."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import mailkit
from fault_helpers import accepted_recipients, commands, frame, max_in_window, send, statuses
from mailkit.pool import ConnectionLimit
from mailkit.ratelimit import RateLimiter, parse_rate
from mailkit.replies import enhanced_status, is_quota, is_session_end, is_throttle
from mailkit.testing import FaultSMTPServer, Rule

# -- C23: provider throttling -------------------------------------------------------


def test_c23_rate_holds_across_workers():
    df = frame(12)
    with FaultSMTPServer() as server:
        results = send(df, server.url, max_workers=4, rate=20)

    assert statuses(results) == {"sent": 12}
    starts = [moment.timestamp() for moment in results["started_at"]]
    assert max_in_window(starts, 0.25) <= 0.25 * 20 + 1
    assert max(starts) - min(starts) >= 11 / 20 - 0.05
    arrivals = [message.received_at for message in server.messages]
    assert max_in_window(arrivals, 0.5) <= 0.5 * 20 + 1
    assert max(arrivals) - min(arrivals) >= 11 / 20 - 0.05
    assert results.attrs["rate_per_s"] == 20
    assert len(server.sessions) == 4


def test_c23_rate_per_minute_string():
    df = frame(3)
    with FaultSMTPServer() as server:
        results = send(df, server.url, max_workers=3, rate="600/min")

    assert results.attrs["rate_per_s"] == 10
    starts = [moment.timestamp() for moment in results["started_at"]]
    assert max(starts) - min(starts) >= 0.19


def test_c23_throttle_backs_off_and_every_row_sent_once(caplog):
    # The server accepts 3 messages in any 0.5 s and answers MAIL beyond that
    # with "421 4.7.0 Try again later, closing connection"; the client's own
    # rate (10 per second) is too high, so it must back off and resume.
    caplog.set_level(logging.INFO, logger="mailkit")
    df = frame(16)
    server = FaultSMTPServer(throttle_message_limit=3, throttle_window=0.5)
    with server:
        results = send(df, server.url, max_workers=4, rate=10, retry_backoff=0.1, max_retries=6)

    assert statuses(results) == {"sent": 16}
    assert accepted_recipients(server) == {address: 1 for address in df["email"]}
    throttle_replies = [
        reply
        for session in server.sessions
        for reply in session.replies
        if reply.startswith("421 4.7.0 Try again later")
    ]
    assert throttle_replies
    assert results.attrs["throttle_events"] == len(throttle_replies)
    assert results.attrs["lowest_connection_limit"] < 4
    assert results["attempts"].max() > 1
    arrivals = [message.received_at for message in server.messages]
    assert max_in_window(arrivals, 0.5) <= 3 + 1
    log_lines = [r for r in caplog.records if "throttled in session" in r.getMessage()]
    assert log_lines[0].levelno == logging.WARNING
    assert "pausing" in log_lines[0].getMessage()
    assert all(event["code"] == 421 for event in results.attrs["throttle_log"])


def test_safe_mode_uses_rate_with_jitter():
    df = frame(4)
    with FaultSMTPServer() as server:
        results = send(df, server.url, mode="safe", delay=0.1, jitter=0.1)

    assert results.attrs["workers"] == 1
    assert results.attrs["rate_per_s"] == pytest.approx(10)
    starts = [moment.timestamp() for moment in results["started_at"]]
    assert max_in_window(starts, 0.1) <= 2
    assert max(starts) - min(starts) >= 0.29


def test_adaptive_off_keeps_connection_count():
    df = frame(20)
    with FaultSMTPServer(concurrent_session_limit=2) as server:
        results = send(df, server.url, max_workers=4, adaptive=False)

    assert statuses(results) == {"sent": 20}
    assert results.attrs["connection_limit"] == 4
    assert results.attrs["lowest_connection_limit"] == 4
    assert results.attrs["throttle_events"] >= 1


def test_session_refused_at_first_connection_raises():
    with FaultSMTPServer(concurrent_session_limit=0) as server:
        with pytest.raises(mailkit.SMTPSessionRefusedError) as caught:
            send(frame(2), server.url, max_retries=2)

    assert caught.value.code == 421
    assert "Too many concurrent SMTP connections" in str(caught.value)
    assert isinstance(caught.value, mailkit.SMTPConnectError)
    # The first try and two retries, and no other connection.
    assert len(server.sessions) == 3


def test_first_connection_refused_once_is_retried():
    rule = Rule("GREETING", reply="421 4.7.0 Try again later", times=1)
    with FaultSMTPServer(rules=[rule]) as server:
        results = send(frame(6), server.url, max_workers=3)

    assert statuses(results) == {"sent": 6}
    assert accepted_recipients(server) == {f"row{i}@example.com": 1 for i in range(6)}
    assert results.attrs["throttle_events"] == 1
    assert results.attrs["throttle_log"][0]["code"] == 421


def test_first_login_454_is_retried():
    # After a recent login every connection logs in at once. A 454 to the
    # first connection's AUTH must not fail the batch while others are in.
    rule = Rule("AUTH", reply="454 4.7.0 Too many login attempts", session=2)
    with FaultSMTPServer(rules=[rule], credentials={"user": "secret"}) as server:
        url = f"smtp://user@127.0.0.1:{server.port}"
        config = mailkit.SMTPConfig.from_url(url, password="secret", allow_insecure_auth=True)
        send(frame(1), config, max_workers=1)
        results = send(frame(8, start=10), config, max_workers=4)

    assert statuses(results) == {"sent": 8}
    assert any(reply.startswith("454 ") for reply in server.sessions[1].replies)
    assert sorted(accepted_recipients(server)) == sorted(
        [f"row{i}@example.com" for i in [0, *range(10, 18)]]
    )
    assert results.attrs["throttle_events"] >= 1


def test_stop_while_the_first_connection_waits_to_retry():
    token = mailkit.StopToken()
    with FaultSMTPServer(concurrent_session_limit=0) as server:
        threading.Timer(0.3, token.set).start()
        started = time.monotonic()
        results = send(frame(3), server.url, stop=token, retry_backoff=5.0)
        elapsed = time.monotonic() - started

    assert statuses(results) == {"skipped": 3}
    assert elapsed < 2.0
    assert len(server.sessions) == 1


def test_server_refusing_every_reconnect_stops_run():
    # The first session works; after it closes, every new one is refused.
    df = frame(6)
    rules = [
        Rule(
            "GREETING",
            reply="421 4.3.2 Service shutting down",
            when=lambda context: context.session_id > 1,
        )
    ]
    with FaultSMTPServer(rules=rules, session_message_limit=2) as server:
        with pytest.raises(mailkit.BatchStopped) as caught:
            send(df, server.url, mode="fast", max_retries=2)

    results = caught.value.results
    # Row 2 reached MAIL on the first session before the server ended it.
    assert statuses(results) == {"sent": 2, "deferred": 1, "skipped": 3}
    assert results.loc[2, "smtp_code"] == 421
    assert "not tried again because no connection" in results.loc[2, "error"]
    assert "no connection to 127.0.0.1 could be opened" in str(caught.value)
    assert len(server.messages) == 2
    assert len(server.sessions) == 1 + 3


# -- units: classification, rate parsing, the limiter and the connection limit --------


@pytest.mark.parametrize(
    ("command", "code", "reply", "quota", "throttle"),
    [
        ("MAIL", 550, "5.4.5 Daily user sending limit exceeded", True, False),
        ("MAIL", 550, "5.4.5 Daily sending quota exceeded", True, False),
        ("EOD", 454, "Throttling failure: Daily message quota exceeded.", True, False),
        ("EOD", 454, "Throttling failure: Maximum sending rate exceeded.", False, True),
        ("EOD", 554, "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException", True, False),
        ("RCPT", 452, "4.2.2 The email account that you tried to reach is over quota", False, False),
        ("EOD", 552, "5.2.2 mailbox full; quota exceeded", False, False),
        ("MAIL", 421, "4.7.0 Try again later, closing connection", False, True),
        ("CONNECT", 421, "4.7.0 Too many concurrent SMTP connections", False, True),
        ("CONNECT", 432, "4.3.2 Concurrent connections limit exceeded", False, True),
        ("AUTH", 454, "4.7.0 Too many login attempts, try again later", False, True),
        ("MAIL", 421, "4.4.2 mx Error: timeout exceeded", False, False),
        ("MAIL", 421, "4.7.0 Too many messages in this session, closing", False, False),
        ("RCPT", 450, "4.2.1 The user is receiving mail at a rate that prevents", False, False),
        ("RCPT", 550, "5.1.1 No such user", False, False),
        ("EOD", 250, "2.0.0 OK", False, False),
        ("MAIL", 451, "4.3.0 Temporary local problem", False, False),
    ],
)
def test_reply_classification(command, code, reply, quota, throttle):
    assert is_quota(command, code, reply) is quota
    assert is_throttle(command, code, reply) is throttle


def test_enhanced_status_and_session_end():
    assert enhanced_status("550 5.4.5 Daily limit") == "5.4.5"
    assert enhanced_status("250 OK") is None
    assert is_session_end(421, "4.4.2 timeout exceeded")
    assert not is_session_end(451, "4.4.2 timeout")
    assert not is_session_end(421, "4.7.0 Try again later")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (0, None),
        (2, 2.0),
        (0.5, 0.5),
        ("30/min", 0.5),
        ("2/s", 2.0),
        ("3600 per hour", 1.0),
        ("1.5 / second", 1.5),
        ("86400/day", 1.0),
        ("2.5", 2.5),
    ],
)
def test_parse_rate(value, expected):
    assert parse_rate(value) == expected


@pytest.mark.parametrize("value", ["fast", "30/week", -1, float("inf"), True, [1]])
def test_parse_rate_rejects(value):
    with pytest.raises(mailkit.ConfigurationError, match="Invalid rate"):
        parse_rate(value)


def test_rate_limiter_spaces_starts_over_threads():
    limiter = RateLimiter(20.0)
    stop = threading.Event()
    starts: list[float] = []
    lock = threading.Lock()

    def take(count: int) -> None:
        for _ in range(count):
            assert limiter.wait(stop)
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=take, args=(3,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    starts.sort()
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    assert len(starts) == 12
    # 10 ms of slack for the time between the limiter's start and the append.
    assert min(gaps) >= 0.05 - 0.01
    assert starts[-1] - starts[0] >= 11 / 20 - 0.01


def test_rate_limiter_burst_and_pause():
    limiter = RateLimiter(10.0, burst=3)
    stop = threading.Event()
    started = time.monotonic()
    for _ in range(3):
        assert limiter.wait(stop)
    assert time.monotonic() - started < 0.05
    assert limiter.wait(stop)
    assert time.monotonic() - started >= 0.095
    limiter.pause(0.3)
    paused_at = time.monotonic()
    assert limiter.wait(stop)
    assert time.monotonic() - paused_at >= 0.29
    stop.set()
    assert limiter.wait(stop) is False


def test_rate_limiter_stop_ends_wait():
    limiter = RateLimiter(0.5)
    stop = threading.Event()
    assert limiter.wait(stop)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert limiter.wait(stop) is False
    assert time.monotonic() - started < 1.0


def test_connection_limit_adapts():
    limit = ConnectionLimit(8, recover_after=lambda current: 2)
    stop = threading.Event()
    for _ in range(6):
        assert limit.acquire(stop, lambda: False)
    limit.release()
    event = limit.session_refused(421, "4.7.0 Too many concurrent SMTP connections")
    assert limit.limit == 5
    assert event.kind == "session refused"
    assert event.limit == 5
    limit.throttled(421, "4.7.0 Try again later")
    assert limit.limit == 2
    assert limit.shed()
    assert limit.shed()
    assert limit.shed()
    assert not limit.shed()
    assert limit.open == 2
    limit.accepted()
    limit.accepted()
    assert limit.limit == 3
    assert limit.lowest_limit == 2
    assert limit.throttle_count == 2
    assert not limit.acquire(stop, lambda: True) or limit.open == 3


def test_connection_limit_waits_for_release():
    limit = ConnectionLimit(1)
    stop = threading.Event()
    assert limit.acquire(stop, lambda: False)
    threading.Timer(0.1, limit.release).start()
    started = time.monotonic()
    assert limit.acquire(stop, lambda: False)
    assert time.monotonic() - started >= 0.09
    assert not limit.acquire(stop, lambda: True)


def test_stop_during_login_retry_ends_threads():
    # The 454 comes after EHLO, when rows are already being composed; the stop
    # during the wait must end the composer thread too.
    token = mailkit.StopToken()
    rule = Rule("AUTH", reply="454 4.7.0 Too many login attempts")
    with FaultSMTPServer(rules=[rule], credentials={"user": "secret"}) as server:
        config = mailkit.SMTPConfig.from_url(
            f"smtp://user@127.0.0.1:{server.port}", password="secret", allow_insecure_auth=True
        )
        threading.Timer(0.3, token.set).start()
        # More rows than the composer keeps ahead, so that it is still waiting.
        results = send(frame(300), config, stop=token, retry_backoff=5.0)

    assert statuses(results) == {"skipped": 300}
    assert not commands(server, "MAIL")
    alive = [t.name for t in threading.enumerate() if t.name.startswith("mailkit-")]
    assert alive == []
