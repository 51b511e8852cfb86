"""mailkit.widgets.SMTPSettings: providers, the connection test and the password."""

from __future__ import annotations

import json
import logging
import socket

import ipywidgets
import ipywidgets.embed
import pytest
from delayed_smtp import DelayedSMTPServer

import mailkit
from mailkit.providers import PROVIDERS
from mailkit.widgets import CUSTOM, LOCAL_SERVER, SMTPSettings

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


def test_settings_lists_every_provider():
    settings = SMTPSettings()
    options = {value: label for label, value in settings.preset.options}

    assert options[CUSTOM] == "Custom"
    assert LOCAL_SERVER in options
    for name, preset in PROVIDERS.items():
        assert options[name] == preset.display_name
    assert len(options) == len(PROVIDERS) + 2


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_settings_provider_fills_fields(name):
    preset = PROVIDERS[name]
    settings = SMTPSettings()

    settings.preset.value = name

    assert settings.host.value == preset.host
    assert settings.port.value == preset.port
    assert settings.security.value == preset.security
    assert settings.username.value == preset.username
    assert settings.preset.value == name
    assert settings.provider == name
    config = settings.config()
    assert (config.host, config.port, config.security) == (
        preset.host,
        preset.port,
        preset.security,
    )
    assert config.provider == name
    assert f"{preset.max_connections} connection(s)" in settings.limits.value


def test_settings_local_server_choice():
    settings = SMTPSettings()

    settings.preset.value = LOCAL_SERVER

    assert settings.host.value == "127.0.0.1"
    assert settings.port.value == 1025
    assert settings.security.value == "none"
    assert settings.provider is None
    assert settings.config().provider is None
    assert "mailkit serve" in settings.hint.value
    assert settings.limits.value == ""


def test_settings_provider_hint_and_user():
    settings = SMTPSettings()

    settings.preset.value = "sendgrid"
    assert settings.username.value == "apikey"
    assert "API key" in settings.hint.value

    settings.preset.value = "gmail"
    assert "app password" in settings.hint.value
    assert settings.username.value == ""

    settings.username.value = "me@gmail.com"
    settings.preset.value = "google-workspace"
    assert settings.username.value == "me@gmail.com"


def test_settings_editing_host_keeps_provider():
    settings = SMTPSettings()
    settings.preset.value = "gmail"

    settings.host.value = "smtp.example.com"

    assert settings.preset.value == "gmail"
    assert settings.host.value == "smtp.example.com"
    assert settings.config().provider == "gmail"
    assert "is not Gmail&#x27;s host smtp.gmail.com" in settings.limits.value
    assert "Choose Custom" in settings.limits.value


def test_settings_other_ses_region_no_warning():
    settings = SMTPSettings()
    settings.preset.value = "ses"

    settings.host.value = "email-smtp.eu-west-1.amazonaws.com"

    assert settings.config().provider == "ses"
    assert "mailkit-info" in settings.limits.value
    assert "is not" not in settings.limits.value
    assert "200 message(s) per 24 hours" in settings.limits.value


def test_settings_custom_has_no_provider():
    settings = SMTPSettings()
    settings.preset.value = "microsoft365"

    settings.preset.value = CUSTOM
    settings.host.value = "smtp.example.com"

    assert settings.provider is None
    assert settings.config().provider is None
    assert settings.hint.value == ""
    assert settings.limits.value == ""


def test_settings_custom_known_host_shows_limits():
    settings = SMTPSettings()

    settings.host.value = "smtp.office365.com"

    assert settings.preset.value == CUSTOM
    assert settings.config().provider is None
    assert "Microsoft 365" in settings.limits.value
    assert "30 message(s) per minute" in settings.limits.value


def test_settings_filled_from_provider_config():
    config = mailkit.SMTPConfig.from_provider(
        "ses", host="email-smtp.eu-west-1.amazonaws.com", username="robot"
    )

    settings = SMTPSettings(config)

    assert settings.preset.value == "ses"
    assert settings.host.value == "email-smtp.eu-west-1.amazonaws.com"
    assert settings.username.value == "robot"
    assert settings.config().provider == "ses"


def test_settings_filled_from_provider_host():
    settings = SMTPSettings("smtp+starttls://me%40gmail.com@smtp.gmail.com:587")

    assert settings.preset.value == "gmail"
    assert settings.username.value == "me@gmail.com"
    assert "app password" in settings.hint.value


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
