"""The latency-simulating server: profiles, delays, TLS, AUTH and provider limits."""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import time
from pathlib import Path

import pytest

import mailkit
from benchmarks.baselines import open_smtplib
from benchmarks.latency_server import (
    BENCH_PASSWORD,
    LatencyServer,
    LatencyServerProcess,
    ProviderProfile,
    available_profiles,
    load_profile,
    main,
)
from benchmarks.workload import TEMPLATES, prebuilt_messages, recipients_frame


def test_shipped_profiles_load():
    names = available_profiles()
    assert "gmail" in names
    assert "loopback" in names
    for name in names:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.status


def test_gmail_profile_derived_times():
    profile = load_profile("gmail")
    assert profile.setup_time() == pytest.approx(1.05)
    assert profile.message_time(pipelined=False) == pytest.approx(1.0)
    assert profile.message_time(pipelined=True) == pytest.approx(0.8)
    assert profile.message_time() == pytest.approx(0.8)
    assert profile.quit_time() == pytest.approx(0.1)
    assert profile.max_sessions == 15


def test_gmail_profile_lower_bound():
    profile = load_profile("gmail")
    assert profile.lower_bound(100, 10, 0.1) == pytest.approx(0.905)
    assert profile.lower_bound(100, 10, 0.1, pipelined=False) == pytest.approx(1.105)
    assert profile.lower_bound(101, 10, 0.1) == pytest.approx(0.985)
    assert profile.lower_bound(0, 10, 0.1) == 0.0


def test_gmail_profile_names_a_source_for_every_figure():
    profile = load_profile("gmail")
    for name in (*profile.delays, "max_sessions"):
        assert profile.sources.get(name), f"no source for {name}"
    assert "not measurements" in profile.status


def test_lower_bound_rejects_zero_connections():
    with pytest.raises(ValueError, match="connections"):
        load_profile("gmail").lower_bound(10, 0)


def test_load_profile_unknown_name():
    with pytest.raises(ValueError, match="Unknown profile 'nowhere'"):
        load_profile("nowhere")


def test_load_profile_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="Cannot read the profile"):
        load_profile(path)


def test_load_profile_missing_keys(tmp_path):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"name": "partial", "delays": {}}), encoding="utf-8")
    with pytest.raises(ValueError, match="missing description, status"):
        load_profile(path)


def test_load_profile_delay_without_seconds(tmp_path):
    path = tmp_path / "odd.json"
    document = {"name": "odd", "description": "d", "status": "s", "delays": {"eod": 0.7}}
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match="must be an object"):
        load_profile(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"delays": {"banner": 0.1}}, "unknown delay name"),
        ({"delays": {"eod": -1.0}}, "give 0 or more"),
        ({"delays": {"eod": float("nan")}}, "finite number"),
        ({"security": "tls"}, "not supported"),
        ({"max_sessions": 0}, "whole number"),
    ],
)
def test_profile_rejects_invalid_values(changes, message):
    fields = {"name": "x", "description": "d", "status": "s", "delays": {}}
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        ProviderProfile(**fields)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scale": -0.1}, "Invalid scale"),
        ({"max_lifetime": 0}, "Invalid max_lifetime"),
        ({"max_sessions": -1}, "Invalid max_sessions"),
    ],
)
def test_latency_server_rejects_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        LatencyServer("gmail", **options)


def test_session_uses_starttls_and_auth():
    message = prebuilt_messages(1)[0]
    with LatencyServer("gmail", scale=0.01) as server:
        endpoint = server.endpoint()
        smtp = open_smtplib(endpoint)
        smtp.sendmail(message.envelope_from, list(message.recipients), message.data)
        smtp.quit()
        server.server.wait_for_idle()
        sessions = server.server.sessions
        received = server.server.messages
    assert len(sessions) == 1
    session = sessions[0]
    assert session.tls_active
    assert session.tls_version in ("TLSv1.2", "TLSv1.3")
    assert session.login == "bench@example.com"
    verbs = [verb for verb, _ in session.commands]
    assert verbs[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]
    assert len(received) == 1
    assert received[0].data == message.data.removesuffix(b"\r\n") + b"\r\n"
    assert received[0].rcpt_tos == message.recipients


def test_certificate_is_verified_against_test_ca():
    with LatencyServer("gmail", scale=0.0) as server:
        smtp = smtplib.SMTP(server.host, server.port, timeout=10)
        smtp.ehlo()
        with pytest.raises(ssl.SSLCertVerificationError):
            smtp.starttls(context=ssl.create_default_context())
        smtp.close()
        assert server.cafile is not None
        verified = ssl.create_default_context(cafile=server.cafile)
        smtp = smtplib.SMTP(server.host, server.port, timeout=10)
        smtp.ehlo()
        smtp.starttls(context=verified)
        smtp.quit()


def test_auth_requires_tls():
    with LatencyServer("gmail", scale=0.0) as server:
        smtp = smtplib.SMTP(server.host, server.port, timeout=10)
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", "PLAIN AGJlbmNoAHg=")
        smtp.close()
    assert code == 530


def test_setup_takes_the_scaled_profile_delays():
    with LatencyServer("gmail", scale=0.2) as server:
        endpoint = server.endpoint()
        started = time.perf_counter()
        smtp = open_smtplib(endpoint)
        setup = time.perf_counter() - started
        smtp.quit()
        expected = server.setup_time()
    assert expected == pytest.approx(0.21)
    assert setup >= expected * 0.95
    assert setup < expected + 1.0


def test_pipelined_envelope_costs_one_delay():
    profile = ProviderProfile(
        name="envelope",
        description="d",
        status="s",
        delays={"mail": 0.3, "rcpt": 0.3, "data": 0.3},
        security="none",
        auth=False,
    )
    with LatencyServer(profile, scale=1.0) as server:
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            stream = sock.makefile("rb")
            stream.readline()
            sock.sendall(b"EHLO client.example\r\n")
            while not stream.readline().startswith(b"250 "):
                pass
            started = time.perf_counter()
            sock.sendall(
                b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
            )
            replies = [stream.readline() for _ in range(3)]
            pipelined = time.perf_counter() - started
    assert [reply[:3] for reply in replies] == [b"250", b"250", b"354"]
    assert profile.message_time(pipelined=True) == pytest.approx(0.3)
    assert 0.28 <= pipelined < 0.6


def test_session_cap_answers_421():
    with LatencyServer("gmail", scale=0.0, max_sessions=2) as server:
        endpoint = server.endpoint()
        first = open_smtplib(endpoint)
        second = open_smtplib(endpoint)
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            open_smtplib(endpoint)
        first.quit()
        second.quit()
    assert refused.value.smtp_code == 421


def test_login_limit_answers_454():
    with LatencyServer("gmail", scale=0.0, logins_per_minute=2) as server:
        endpoint = server.endpoint()
        for _ in range(2):
            open_smtplib(endpoint).quit()
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            open_smtplib(endpoint)
    assert refused.value.smtp_code == 454


def test_limits_default_to_the_profile():
    server = LatencyServer("gmail")
    assert server.max_sessions == 15
    assert server.logins_per_minute is None
    assert LatencyServer("gmail", max_sessions=0).max_sessions is None


def test_server_stops_after_max_lifetime():
    server = LatencyServer("loopback", max_lifetime=0.3).start()
    port = server.port
    deadline = time.monotonic() + 10
    while server.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass


def test_endpoint_repr_hides_the_password():
    with LatencyServer("gmail", scale=0.0) as server:
        endpoint = server.endpoint()
        config = server.smtp_config()
    assert BENCH_PASSWORD not in repr(endpoint)
    assert BENCH_PASSWORD not in repr(config)
    assert config.security == "starttls"
    assert config.cafile is not None


def test_command_line_runs_and_stops(capsys):
    assert main(["--profile", "loopback", "--duration", "0.3"]) == 0
    output = capsys.readouterr().out
    assert "smtp+starttls://127.0.0.1:" in output
    assert "stopped after 0 message(s)" in output
    assert BENCH_PASSWORD not in output


def test_server_process_serves_and_removes_its_ca_file():
    with LatencyServerProcess("gmail", scale=0.0, max_sessions=0) as server:
        cafile = Path(server.cafile)
        assert cafile.is_file()
        assert server.lower_bound(10, 2) == pytest.approx(0.0)
        results = mailkit.send_bulk(
            recipients_frame(4), **TEMPLATES, smtp=server.smtp_config(), progress=False
        )
    assert (results["status"] == "sent").all()
    # terminate() makes the process stop its server, which removes the CA file.
    assert not cafile.exists()
    assert not cafile.parent.exists()


def test_server_process_limits_follow_the_options():
    profile = load_profile("gmail")
    assert LatencyServerProcess("gmail").max_sessions == profile.max_sessions
    assert LatencyServerProcess("gmail", max_sessions=0).max_sessions is None
    plain = LatencyServerProcess("gmail", pipelining=False, scale=0.1)
    assert plain.message_time() == pytest.approx(profile.message_time(0.1, pipelined=False))
