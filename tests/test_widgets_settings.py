"""mailkit.widgets.SMTPSettings: presets, the connection test and the password."""

from __future__ import annotations

import json
import logging
import socket

import ipywidgets
import ipywidgets.embed
import pytest
from delayed_smtp import DelayedSMTPServer

import mailkit
from mailkit.widgets import SMTPSettings

SECRET = "example-secret-123"


def _free_port() -> int:
    # A port that was free a moment ago, so a connection to it is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _saved_state() -> str:
    # The state of every widget in the process, as a notebook saves it.
    return json.dumps(ipywidgets.embed.embed_data(views=None))


def test_settings_filled_from_url(server):
    settings = SMTPSettings(server.url)

    assert settings.host.value == "127.0.0.1"
    assert settings.port.value == server.port
    assert settings.security.value == "none"
    assert settings.config().url == server.url


def test_settings_filled_from_environment(monkeypatch):
    monkeypatch.setenv("MAILKIT_SMTP_URL", "smtps://robot%40example.com@mail.example.com")

    settings = SMTPSettings()

    assert settings.host.value == "mail.example.com"
    assert settings.port.value == 465
    assert settings.security.value == "tls"
    assert settings.username.value == "robot@example.com"


@pytest.mark.parametrize(
    ("preset", "host", "port", "security"),
    [
        ("Gmail / Google Workspace", "smtp.gmail.com", 587, "starttls"),
        ("Microsoft 365", "smtp.office365.com", 587, "starttls"),
        ("Yahoo Mail", "smtp.mail.yahoo.com", 465, "tls"),
        ("Local capture server (127.0.0.1:1025)", "127.0.0.1", 1025, "none"),
    ],
)
def test_settings_preset_fills_fields(preset, host, port, security):
    settings = SMTPSettings()

    settings.preset.value = preset

    assert settings.host.value == host
    assert settings.port.value == port
    assert settings.security.value == security
    assert settings.preset.value == preset


def test_settings_preset_hint_and_user():
    settings = SMTPSettings()

    settings.preset.value = "SendGrid"

    assert settings.username.value == "apikey"
    assert "API key" in settings.hint.value
    settings.preset.value = "Gmail / Google Workspace"
    assert "app password" in settings.hint.value


def test_settings_editing_host_leaves_preset():
    settings = SMTPSettings()
    settings.preset.value = "Gmail / Google Workspace"

    settings.host.value = "smtp.example.com"

    assert settings.preset.value == "Custom"
    assert settings.host.value == "smtp.example.com"


def test_settings_security_follows_usual_port():
    settings = SMTPSettings()
    settings.security.value = "starttls"
    settings.port.value = 587

    settings.security.value = "tls"
    assert settings.port.value == 465
    settings.security.value = "starttls"
    assert settings.port.value == 587
    settings.port.value = 2525
    settings.security.value = "tls"
    assert settings.port.value == 2525


@pytest.mark.parametrize(
    ("host", "message"),
    [("", "host is missing"), ("smtp://x.example.com", "Invalid SMTP host")],
)
def test_settings_invalid_host_shown_in_form(host, message):
    settings = SMTPSettings()
    settings.host.value = host

    with pytest.raises(mailkit.ConfigurationError, match=message):
        settings.config()
    assert settings.test_connection() is False
    assert message in settings.status.value
    assert "Traceback" not in settings.status.value


def test_connection_test_succeeds(server):
    settings = SMTPSettings(server.url)

    assert settings.test_connection() is True

    assert f"Connected to 127.0.0.1:{server.port} without TLS" in settings.status.value
    assert "no login" in settings.status.value
    assert server.sessions == 1
    assert server.messages == []
    assert settings.test_button.disabled is False


def test_connection_test_button_runs_in_background(server):
    settings = SMTPSettings(server.url)

    settings.test_button.click()

    assert settings.wait(20)
    assert "Connected to" in settings.status.value
    assert server.sessions == 1


def test_connection_test_refused_port():
    port = _free_port()
    settings = SMTPSettings(f"smtp://127.0.0.1:{port}")

    assert settings.test_connection() is False

    assert "The connection test failed" in settings.status.value
    assert f"127.0.0.1:{port}" in settings.status.value
    assert "Traceback" not in settings.status.value
    assert settings.test_button.disabled is False


def test_connection_test_starttls_not_offered(server):
    settings = SMTPSettings(server.url)
    settings.security.value = "starttls"
    settings.port.value = server.port

    assert settings.test_connection() is False

    assert "does not offer STARTTLS" in settings.status.value


def test_connection_test_logs_in():
    with DelayedSMTPServer(login=("robot@example.com", SECRET)) as auth_server:
        settings = SMTPSettings(auth_server.url)
        settings.username.value = "robot@example.com"
        settings.password.value = SECRET
        settings.allow_insecure_auth.value = True

        assert settings.test_connection() is True
        logins = auth_server.logins

    assert logins == [("robot@example.com", True)]
    assert "logged in as robot@example.com" in settings.status.value
    assert SECRET not in settings.status.value


def test_connection_test_wrong_password():
    with DelayedSMTPServer(login=("robot@example.com", SECRET)) as auth_server:
        settings = SMTPSettings(auth_server.url)
        settings.username.value = "robot@example.com"
        settings.password.value = "wrong-password-456"
        settings.allow_insecure_auth.value = True

        assert settings.test_connection() is False
        logins = auth_server.logins

    # smtplib tries each offered mechanism (PLAIN, then LOGIN) before giving up.
    assert logins
    assert all(entry == ("robot@example.com", False) for entry in logins)
    assert "rejected the login" in settings.status.value
    assert "wrong-password-456" not in settings.status.value


def test_connection_test_login_needs_tls():
    with DelayedSMTPServer(login=("robot@example.com", SECRET)) as auth_server:
        settings = SMTPSettings(auth_server.url)
        settings.username.value = "robot@example.com"
        settings.password.value = SECRET

        assert settings.test_connection() is False
        logins = auth_server.logins

    assert logins == []
    assert "without TLS" in settings.status.value
    assert "allow_insecure_auth" in settings.status.value


def test_password_taken_out_of_widget(caplog):
    caplog.set_level(logging.DEBUG)
    settings = SMTPSettings("smtp://127.0.0.1:2525")
    settings.username.value = "robot@example.com"

    settings.password.value = SECRET

    assert settings.password.value == ""
    assert settings.has_password
    assert settings.config().password == SECRET
    assert "memory only" in settings.password_state.value
    assert SECRET not in repr(settings)
    assert SECRET not in repr(settings.config())
    assert SECRET not in _saved_state()
    assert SECRET not in caplog.text


def test_password_not_saved_after_connection_test(caplog):
    caplog.set_level(logging.DEBUG)
    with DelayedSMTPServer(login=("robot@example.com", SECRET)) as auth_server:
        settings = SMTPSettings(auth_server.url)
        settings.username.value = "robot@example.com"
        settings.password.value = SECRET
        settings.allow_insecure_auth.value = True
        assert settings.test_connection() is True

    state = _saved_state()
    assert SECRET not in state
    assert '"mailkit-password"' in state
    assert SECRET not in settings.status.value
    assert SECRET not in caplog.text


def test_password_forget_button():
    settings = SMTPSettings("smtp://127.0.0.1:2525")
    settings.username.value = "robot@example.com"
    settings.password.value = SECRET

    settings.forget_button.click()

    assert not settings.has_password
    assert settings.config().password is None
    assert settings.forget_button.disabled is True


def test_password_from_url_kept_in_memory():
    settings = SMTPSettings(f"smtp://robot:{SECRET}@127.0.0.1:2525")

    assert settings.password.value == ""
    assert settings.config().password == SECRET
    assert SECRET not in _saved_state()


def test_password_from_environment(monkeypatch):
    monkeypatch.setenv("MAILKIT_SMTP_PASSWORD", SECRET)
    settings = SMTPSettings("smtp://robot@127.0.0.1:2525")

    assert settings.config().password == SECRET
    assert "MAILKIT_SMTP_PASSWORD" in settings.password_state.value
    assert not settings.has_password
    assert SECRET not in _saved_state()


def test_password_unused_without_user():
    settings = SMTPSettings("smtp://127.0.0.1:2525")

    settings.password.value = SECRET

    assert settings.config().password is None
    assert settings.config().username is None


def test_settings_tls_verify_off_warns():
    settings = SMTPSettings("smtp+starttls://mail.example.com:587")

    settings.verify_tls.value = False

    assert "will not be verified" in settings.status.value
    assert settings.config().tls_verify is False
