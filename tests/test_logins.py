"""The first-login gate, and when a recent login lets a batch skip it."""

from __future__ import annotations

import time

import pytest

import mailkit
from fault_helpers import commands, frame, send, statuses
from mailkit.logins import LoginRegistry, recent_logins
from mailkit.testing import FaultSMTPServer, Rule, make_test_certificates

USER = "sender@example.com"
PASSWORD = "app-password-123"
AUTH_DELAY_S = 0.6
#: Long enough that the first connection cannot send every row alone while the
#: others wait for its login.
MESSAGE_DELAY_S = 0.3
WORKERS = 4


@pytest.fixture(scope="module")
def certificates():
    return make_test_certificates()


@pytest.fixture(scope="module")
def cafile(certificates, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    return str(certificates.authority.write_certificate(path))


def _config(server, cafile, **settings):
    settings.setdefault("username", USER)
    settings.setdefault("password", PASSWORD)
    return mailkit.SMTPConfig(
        host="127.0.0.1",
        port=server.port,
        security="starttls",
        cafile=cafile,
        **settings,
    )


class _AuthClock:
    """A rule predicate that notes when each AUTH arrives and never applies."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, context) -> bool:
        self.times.append(time.monotonic())
        return False

    def batch(self, start: int) -> list[float]:
        return self.times[start:]


def _gated_server(certificates, clock, **settings):
    return FaultSMTPServer(
        tls="starttls",
        certificate=certificates.server,
        delays={"auth": AUTH_DELAY_S, "eod": MESSAGE_DELAY_S},
        rules=[Rule("AUTH", when=clock), *settings.pop("rules", [])],
        **settings,
    )


def test_registry_remembers_only_the_same_account_and_secret():
    registry = LoginRegistry()
    config = mailkit.SMTPConfig(
        host="smtp.example.com", port=587, username=USER, password=PASSWORD
    )
    assert not registry.is_recent(config)
    registry.succeeded(config)
    assert registry.is_recent(config)
    other_password = mailkit.SMTPConfig(
        host="smtp.example.com", port=587, username=USER, password="new-password"
    )
    other_port = mailkit.SMTPConfig(
        host="smtp.example.com", port=2587, username=USER, password=PASSWORD
    )
    assert not registry.is_recent(other_password)
    assert not registry.is_recent(other_port)
    registry.rejected(config)
    assert not registry.is_recent(config)


def test_registry_entries_expire_and_hold_no_secret():
    registry = LoginRegistry(trust_s=-1.0)
    config = mailkit.SMTPConfig(
        host="smtp.example.com", port=587, username=USER, password=PASSWORD
    )
    registry.succeeded(config)
    assert not registry.is_recent(config)
    kept = LoginRegistry()
    kept.succeeded(config)
    assert PASSWORD not in repr(vars(kept))


def test_registry_ignores_token_logins_and_anonymous_sessions():
    registry = LoginRegistry()
    token = mailkit.SMTPConfig(
        host="smtp.example.com", port=587, username=USER, token_provider=lambda: "token"
    )
    anonymous = mailkit.SMTPConfig(host="smtp.example.com", port=25)
    for config in (token, anonymous):
        registry.succeeded(config)
        assert not registry.is_recent(config)


def test_only_first_batch_waits_for_login(certificates, cafile):
    clock = _AuthClock()
    with _gated_server(certificates, clock) as server:
        config = _config(server, cafile)
        first = send(frame(WORKERS * 2), config, max_workers=WORKERS)
        first_logins = clock.batch(0)
        second = send(frame(WORKERS * 2, start=100), config, max_workers=WORKERS)
        second_logins = clock.batch(len(first_logins))

    assert statuses(first) == {"sent": WORKERS * 2}
    assert statuses(second) == {"sent": WORKERS * 2}
    assert len(first_logins) == len(second_logins) == WORKERS
    # First batch: no other session sends AUTH before the first login's reply.
    assert min(first_logins[1:]) - first_logins[0] >= AUTH_DELAY_S
    # Next batch: the same account logged in a moment ago, so the sessions log
    # in together, well within one login's delay.
    assert max(second_logins) - min(second_logins) < AUTH_DELAY_S


def test_revoked_password_fails_before_rows(
    certificates, cafile
):
    """A password revoked between two batches: the batch that trusted the old
    login fails before any message, and the one after it logs in only once."""
    revoked = {"now": False}
    rule = Rule(
        "AUTH",
        reply="535 5.7.8 Username and Password not accepted",
        when=lambda context: revoked["now"],
    )
    clock = _AuthClock()
    with _gated_server(certificates, clock, rules=[rule]) as server:
        config = _config(server, cafile)
        send(frame(WORKERS), config, max_workers=WORKERS)
        assert recent_logins.is_recent(config)
        mails_before = len(commands(server, "MAIL"))
        revoked["now"] = True
        logins_before = len(clock.times)
        with pytest.raises(mailkit.AuthenticationError):
            send(frame(WORKERS, start=100), config, max_workers=WORKERS)
        trusted_attempts = len(clock.times) - logins_before
        assert not recent_logins.is_recent(config)
        logins_before = len(clock.times)
        with pytest.raises(mailkit.AuthenticationError):
            send(frame(WORKERS, start=200), config, max_workers=WORKERS)
        gated_attempts = len(clock.times) - logins_before
        mails_after = len(commands(server, "MAIL"))

    assert mails_after == mails_before == WORKERS
    assert 1 <= trusted_attempts <= WORKERS
    assert gated_attempts == 1
