"""Provider presets: settings, limits applied by send_bulk, and their checks."""

from __future__ import annotations

import dataclasses
import logging

import pytest

import mailkit
from fault_helpers import frame, send, statuses
from mailkit.modes import resolve_mode
from mailkit.providers import PROVIDERS, get_provider, provider_for_host
from mailkit.testing import FaultSMTPServer


def test_presets_have_settings_and_source():
    assert set(PROVIDERS) == {
        "gmail",
        "google-workspace",
        "microsoft365",
        "outlook.com",
        "ses",
        "yahoo",
        "icloud",
        "fastmail",
        "sendgrid",
    }
    for preset in PROVIDERS.values():
        assert preset.display_name
        assert preset.port in (465, 587)
        assert preset.security in ("starttls", "tls")
        assert preset.max_connections >= 1
        assert preset.source


def test_microsoft365_published_limits():
    preset = get_provider("microsoft365")
    assert preset.host == "smtp.office365.com"
    assert preset.max_connections == 3
    assert preset.rate == pytest.approx(30 / 60)
    assert preset.daily_quota == 10_000


@pytest.mark.parametrize(
    ("alias", "name"),
    [("Office365", "microsoft365"), ("m365", "microsoft365"), ("hotmail", "outlook.com")],
)
def test_provider_aliases(alias, name):
    assert get_provider(alias).name == name


def test_unknown_provider_lists_names():
    with pytest.raises(mailkit.ConfigurationError, match="Unknown provider") as info:
        get_provider("nope")

    assert "'nope'" in str(info.value)
    assert "sendgrid" in str(info.value)
    assert "gmail" in str(info.value)


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("smtp.gmail.com", "gmail"),
        ("SMTP.Office365.com", "microsoft365"),
        ("smtp-mail.outlook.com", "outlook.com"),
        ("email-smtp.eu-west-1.amazonaws.com", "ses"),
        ("smtp.mail.yahoo.com", "yahoo"),
        ("smtp.mail.me.com", "icloud"),
        ("smtp.fastmail.com", "fastmail"),
        ("smtp.sendgrid.net", "sendgrid"),
    ],
)
def test_known_hosts_select_preset(host, name):
    assert provider_for_host(host).name == name


def test_unknown_host_has_no_preset():
    assert provider_for_host("mail.example.com") is None


def test_config_from_provider():
    config = mailkit.SMTPConfig.from_provider(
        "gmail", username="me@gmail.com", password="app-password"
    )
    assert (config.host, config.port, config.security) == ("smtp.gmail.com", 587, "starttls")
    assert config.provider == "gmail"
    assert "app-password" not in repr(config)


def test_config_from_provider_fixed_username():
    config = mailkit.SMTPConfig.from_provider("sendgrid", password="api-key")
    own = mailkit.SMTPConfig.from_provider("sendgrid", username="other", password="k")

    assert config.username == "apikey"
    assert config.provider == "sendgrid"
    assert own.username == "other"
    assert mailkit.SMTPConfig.from_provider("gmail").username is None


def test_config_rejects_unknown_provider():
    with pytest.raises(mailkit.ConfigurationError, match="Unknown provider"):
        mailkit.SMTPConfig("smtp.example.com", provider="nope")


def test_config_token_provider_needs_username():
    with pytest.raises(mailkit.ConfigurationError, match="needs username"):
        mailkit.SMTPConfig("smtp.example.com", token_provider=lambda: "t")


def test_config_token_provider_masked_in_repr():
    config = mailkit.SMTPConfig("smtp.example.com", username="u", token_provider=lambda: "t")
    assert "token_provider=<set>" in repr(config)


def test_preset_rate_is_default_and_safe_takes_lower():
    preset = get_provider("microsoft365")
    instant = resolve_mode("instant", max_connections=3, default_rate=preset.rate)
    assert instant.workers == 3
    assert instant.rate == pytest.approx(0.5)
    explicit = resolve_mode("instant", rate="2/s", default_rate=preset.rate)
    assert explicit.rate == 2
    safe = resolve_mode("safe", delay=1.0, default_rate=preset.rate)
    assert safe.rate == pytest.approx(0.5)


def test_send_bulk_applies_preset_connection_cap():
    df = frame(12)
    with FaultSMTPServer() as server:
        results = send(df, server.url, provider="microsoft365", rate=100, max_workers=10)

    assert statuses(results) == {"sent": 12}
    assert results.attrs["provider"] == "microsoft365"
    assert results.attrs["max_connections"] == 3
    assert results.attrs["peak_connections"] <= 3
    assert server.max_concurrent_sessions <= 3
    assert results.attrs["rate_per_s"] == 100
    assert results.attrs["daily_quota"] == 10_000


def test_preset_daily_quota_stops_run_quietly(caplog):
    caplog.set_level(logging.WARNING, logger="mailkit")
    df = frame(5)
    with FaultSMTPServer() as server:
        results = send(
            df, server.url, provider="ses", rate=100, max_workers=2, daily_quota=None
        )
        explicit = send(frame(3, start=10), server.url, provider="ses", rate=100, daily_quota=2)

    assert results.attrs["daily_quota"] == 200
    assert statuses(results) == {"sent": 5}
    assert statuses(explicit) == {"sent": 2, "skipped": 1}
    skipped = explicit.loc[explicit["status"] == "skipped", "error"]
    assert skipped.str.contains("daily quota of 2 messages is used up").all()
    assert len(server.messages) == 7


def test_rows_over_preset_quota_are_logged(caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="mailkit")
    preset = PROVIDERS["ses"]
    small = dataclasses.replace(preset, rate=None, daily_quota=2)
    monkeypatch.setitem(PROVIDERS, "ses", small)
    with FaultSMTPServer() as server:
        results = send(frame(3), server.url, provider="ses")

    assert "3 rows exceed the daily quota of 2 messages for ses" in caplog.text
    assert statuses(results) == {"sent": 2, "skipped": 1}
    assert len(server.messages) == 2
