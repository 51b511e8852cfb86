"""SMTP settings: URLs, the environment, masked passwords and finite timeouts."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

import mailkit
from mailkit.config import resolve_smtp

SECRET = "example-secret-123"


def test_url_schemes_and_default_ports():
    plain = mailkit.SMTPConfig.from_url("smtp://127.0.0.1:2525")
    assert (plain.host, plain.port, plain.security) == ("127.0.0.1", 2525, "none")
    starttls = mailkit.SMTPConfig.from_url("smtp+starttls://me%40example.com@mail.example.com")
    assert (starttls.port, starttls.security, starttls.username) == (587, "starttls", "me@example.com")
    implicit = mailkit.SMTPConfig.from_url("smtps://me@mail.example.com")
    assert (implicit.port, implicit.security) == (465, "tls")


def test_timeouts_are_finite_by_default():
    config = mailkit.SMTPConfig.from_url("smtp://127.0.0.1")
    assert 0 < config.timeout < 120
    assert 0 < config.connect_timeout < 120
    assert mailkit.SMTPConfig.from_url("smtp://127.0.0.1?timeout=5").timeout == 5


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://127.0.0.1", "scheme"),
        ("smtp://", "no host"),
        ("smtp://127.0.0.1:99999", "port"),
        ("smtp://127.0.0.1?colour=red", "Unknown SMTP URL parameter"),
        ("smtp://127.0.0.1?timeout=soon", "Invalid timeout"),
    ],
)
def test_invalid_url(url, message):
    with pytest.raises(mailkit.ConfigurationError, match=message):
        mailkit.SMTPConfig.from_url(url)


def test_invalid_timeout_value():
    with pytest.raises(mailkit.ConfigurationError, match="finite"):
        mailkit.SMTPConfig(host="127.0.0.1", timeout=float("inf"))


def test_password_from_environment_is_masked(monkeypatch):
    monkeypatch.setenv("MAILKIT_SMTP_URL", "smtp+starttls://me@mail.example.com:587")
    monkeypatch.setenv("MAILKIT_SMTP_PASSWORD", SECRET)
    config = resolve_smtp(None)
    assert config.password == SECRET
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert "***" in repr(config)
    assert SECRET not in config.url


def test_password_in_url_is_masked_in_errors():
    with pytest.raises(mailkit.ConfigurationError) as caught:
        mailkit.SMTPConfig.from_url(f"ftp://me:{SECRET}@mail.example.com")
    assert SECRET not in str(caught.value)


def test_nothing_configured_explains_how(monkeypatch):
    monkeypatch.delenv("MAILKIT_SMTP_URL", raising=False)
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.ConfigurationError) as caught:
        mailkit.send_bulk(df, subject="Hi", body="x", sender="me@example.com")
    message = str(caught.value)
    assert "MAILKIT_SMTP_URL" in message
    assert "LocalSMTPServer" in message


def test_password_never_in_results_or_log(server, caplog):
    config = mailkit.SMTPConfig(host=server.host, port=server.port, password=SECRET)
    df = pd.DataFrame({"email": ["a@example.com", "bad@example"]})
    caplog.set_level(logging.DEBUG, logger="mailkit")
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(df, subject="Hi", body="x", sender="me@example.com", smtp=config)
    assert SECRET not in str(caught.value)
    results = mailkit.send_bulk(df.iloc[:1], subject="Hi", body="x", sender="me@example.com", smtp=config)
    assert SECRET not in results.to_csv()
    assert SECRET not in repr(results.attrs)
    assert SECRET not in caplog.text


def test_connection_refused_raises_before_any_row():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.SMTPConnectError, match=f"127.0.0.1:{port}") as caught:
        mailkit.send_bulk(df, subject="Hi", body="x", sender="me@example.com",
                          smtp=f"smtp://127.0.0.1:{port}?connect_timeout=2")
    assert isinstance(caught.value, ConnectionError)
