"""Benchmark clients and sinks: every design delivers exactly the prebuilt bytes."""

from __future__ import annotations

import os
import smtplib
import ssl
from pathlib import Path

import pytest

from benchmarks.baselines import (
    Endpoint,
    send_aiosmtplib,
    send_one_connection,
    send_sequential,
    send_smtplib_pool,
    send_thread_pool,
)
from benchmarks.latency_server import LatencyServer
from benchmarks.mailkit_designs import (
    IncompleteRunError,
    send_prebuilt_with_mailkit,
    send_with_mailkit,
)
from benchmarks.sinks import AiosmtpdSink, PostfixSink, postfix_tools, run_smtp_source
from benchmarks.workload import (
    MESSAGE_SIZE,
    TEMPLATES,
    prebuilt_messages,
    recipients_frame,
)
from mailkit.testing.rules import reject_recipient

needs_postfix = pytest.mark.skipif(
    postfix_tools() is None,
    reason="Postfix's smtp-sink and smtp-source are not installed (.ci/system-packages)",
)

PREBUILT_DESIGNS = {
    "sequential": lambda endpoint, messages: send_sequential(endpoint, messages),
    "one connection": lambda endpoint, messages: send_one_connection(endpoint, messages),
    "thread pool": lambda endpoint, messages: send_thread_pool(endpoint, messages, 4),
    "smtplib pool": lambda endpoint, messages: send_smtplib_pool(endpoint, messages, 4),
    "aiosmtplib": lambda endpoint, messages: send_aiosmtplib(endpoint, messages, 4),
    "mailkit transport": lambda endpoint, messages: send_prebuilt_with_mailkit(
        endpoint, messages, 4
    ),
}

#: Sessions each design opens for 12 messages over 4 connections.
EXPECTED_SESSIONS = {
    "sequential": 12,
    "one connection": 1,
    "thread pool": 12,
    "smtplib pool": 4,
    "aiosmtplib": 4,
    "mailkit transport": 4,
}


def test_prebuilt_messages_have_the_benchmark_size():
    messages = prebuilt_messages(3)
    assert len({message.data for message in messages}) == 3
    for message in messages:
        assert abs(len(message.data) - MESSAGE_SIZE) < 64
        assert message.data.endswith(b"\r\n")
        assert b"\n" not in message.data.replace(b"\r\n", b"")


def test_workload_rejects_negative_counts():
    with pytest.raises(ValueError, match="message count"):
        prebuilt_messages(-1)
    with pytest.raises(ValueError, match="row count"):
        recipients_frame(-1)


def test_endpoint_starttls_needs_context():
    with pytest.raises(ValueError, match="ssl_context"):
        Endpoint("127.0.0.1", 25, starttls=True)


@pytest.mark.parametrize("design", sorted(PREBUILT_DESIGNS))
def test_design_delivers_every_message_once(design):
    messages = prebuilt_messages(12)
    with LatencyServer("loopback", scale=0.0) as server:
        run = PREBUILT_DESIGNS[design](server.endpoint(), messages)
        server.server.wait_for_idle()
        received = server.server.messages
        sessions = server.server.sessions
    assert run.messages == 12
    assert run.elapsed_s > 0
    assert sorted(message.data for message in received) == sorted(
        message.data for message in messages
    )
    assert len(sessions) == EXPECTED_SESSIONS[design]
    assert all(session.tls_active and session.login for session in sessions)


def test_send_with_mailkit_composes_every_row():
    frame = recipients_frame(6)
    with LatencyServer("loopback", scale=0.0) as server:
        run = send_with_mailkit(server.endpoint(), frame, workers=3)
        server.server.wait_for_idle()
        received = server.server.messages
    assert run.design == "mailkit instant"
    assert run.messages == 6
    assert sorted(message.rcpt_tos[0] for message in received) == sorted(frame["email"])
    subjects = {message.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0] for message in received}
    assert b"Your order A0000003, Name3" in subjects
    assert len(received[0].data) > 2000


def test_send_with_mailkit_raises_when_a_row_fails():
    frame = recipients_frame(3)
    with LatencyServer("loopback", scale=0.0) as server:
        server.server.add_rule(reject_recipient("user1@example.net"))
        with pytest.raises(IncompleteRunError, match="1 of 3 rows were not sent"):
            send_with_mailkit(server.endpoint(), frame, mode="fast")


def test_send_prebuilt_with_mailkit_raises_when_refused():
    messages = prebuilt_messages(3)
    with LatencyServer("loopback", scale=0.0) as server:
        server.server.add_rule(reject_recipient("user2@example.net"))
        with pytest.raises(IncompleteRunError, match="failed: The server refused RCPT TO"):
            send_prebuilt_with_mailkit(server.endpoint(), messages, 2)


@pytest.mark.parametrize("design", ["smtplib pool", "thread pool", "aiosmtplib"])
def test_baseline_raises_when_refused(design):
    messages = prebuilt_messages(3)
    with LatencyServer("loopback", scale=0.0) as server:
        server.server.add_rule(reject_recipient("user2@example.net"))
        with pytest.raises(Exception) as raised:
            PREBUILT_DESIGNS[design](server.endpoint(), messages)
    assert "550" in str(raised.value) or "Recipient" in type(raised.value).__name__


def test_baseline_login_failure_raises():
    with LatencyServer("gmail", scale=0.0) as server:
        endpoint = server.endpoint()
        wrong = Endpoint(
            endpoint.host,
            endpoint.port,
            starttls=True,
            ssl_context=ssl.create_default_context(),
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            send_one_connection(wrong, prebuilt_messages(1))


def test_aiosmtpd_sink_counts_messages():
    messages = prebuilt_messages(5)
    with AiosmtpdSink() as sink:
        run = send_smtplib_pool(Endpoint("127.0.0.1", sink.port), messages, 2)
        received = sink.received
    assert run.messages == 5
    assert received == 5


@needs_postfix
def test_postfix_sink_accepts_and_stops():
    with PostfixSink() as sink:
        port = sink.port
        process = sink._process
        assert sink.url == f"smtp://127.0.0.1:{port}"
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
        code, _ = smtp.ehlo()
        assert code == 250
        assert smtp.has_extn("pipelining")
        message = prebuilt_messages(1)[0]
        assert smtp.sendmail(message.envelope_from, list(message.recipients), message.data) == {}
        smtp.quit()
    assert process.poll() is not None
    with pytest.raises(ConnectionRefusedError):
        with smtplib.SMTP("127.0.0.1", port, timeout=2):
            pass


@needs_postfix
def test_postfix_sink_runs_as_nobody_when_root():
    if os.geteuid() != 0:
        pytest.skip("only root passes -u nobody")
    with PostfixSink() as sink:
        command = Path(f"/proc/{sink._process.pid}/cmdline").read_bytes().split(b"\0")
    assert b"-u" in command
    assert b"nobody" in command


@needs_postfix
@pytest.mark.parametrize("reuse", [True, False])
def test_smtp_source_sends_the_count(reuse):
    message = prebuilt_messages(1)[0]
    with AiosmtpdSink() as sink:
        result = run_smtp_source(sink.port, message, count=20, sessions=2, reuse_sessions=reuse)
        received = sink.received
    assert received == 20
    assert result.messages == 20
    assert result.design == ("smtp-source -d -s 2" if reuse else "smtp-source -s 2")


@needs_postfix
def test_smtp_source_failure_raises():
    message = prebuilt_messages(1)[0]
    with AiosmtpdSink() as sink:
        port = sink.port
    with pytest.raises(RuntimeError, match="smtp-source failed"):
        run_smtp_source(port, message, count=1, sessions=1, timeout=20)


def test_templates_render_about_the_reference_size():
    import mailkit

    frame = recipients_frame(1)
    outgoing = mailkit.preview(frame, **TEMPLATES)
    assert 2000 < len(outgoing.data) < 3200
