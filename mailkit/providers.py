"""Settings and limits of common mail providers: ``provider="gmail"`` and others.

A preset gives the submission host, port and TLS mode, and the limits that the
engine applies unless the caller overrides them: concurrent connections, a
message rate and a daily quota. Each figure comes from the provider's own
documentation, named beside it; where a provider publishes no figure, the
comment says so and the value is a cautious choice.

Providers change their limits without notice, and many depend on the account
(trial, sandbox, reputation), so check the named page for your account.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Security
from .errors import ConfigurationError

__all__ = ["PROVIDERS", "ProviderPreset", "get_provider", "provider_for_host"]


@dataclass(frozen=True)
class ProviderPreset:
    """Connection settings and sending limits of one provider.

    ``max_connections`` caps concurrent SMTP sessions; ``rate`` is messages per
    second (None when the provider publishes none); ``daily_quota`` is messages
    per rolling 24 hours for one recipient per message (None when unknown).
    """

    name: str
    host: str
    port: int
    security: Security
    max_connections: int
    rate: float | None
    daily_quota: int | None
    source: str


# Consumer Gmail accounts: smtp.gmail.com with STARTTLS on 587 (465 takes
# implicit TLS), as setup guides give it (for example
# https://prospeo.io/s/gmail-smtp-server-address).
# NOTE: Google publishes no cap on concurrent SMTP sessions and no per-minute
# rate for smtp.gmail.com; 10 connections is mailkit's default, below the 15
# sessions that users often report, and the rate is left to adaptive
# throttling. The daily quota of 500 messages is the consumer figure that
# third-party guides give (for example ggappslegacy.com, "Gmail doesn't send
# email messages"); Google's own page for consumer accounts was not checked.
_GMAIL = ProviderPreset(
    name="gmail",
    host="smtp.gmail.com",
    port=587,
    security="starttls",
    max_connections=10,
    rate=None,
    daily_quota=500,
    source="third-party guides; Google publishes no SMTP session cap or rate",
)

# Google Workspace accounts use the same host. Daily sending limit 2,000
# messages (500 for trial accounts), over a rolling 24-hour period; at most 100
# recipients per message sent over SMTP. Source: Google Workspace Admin Help,
# "Gmail sending limits in Google Workspace",
# https://support.google.com/a/answer/166852.
# NOTE: no session cap or rate is published; the same choices as for Gmail apply.
_GOOGLE_WORKSPACE = ProviderPreset(
    name="google-workspace",
    host="smtp.gmail.com",
    port=587,
    security="starttls",
    max_connections=10,
    rate=None,
    daily_quota=2000,
    source="https://support.google.com/a/answer/166852",
)

# Microsoft 365 (Exchange Online) SMTP AUTH client submission: up to three
# concurrent connections per mailbox (more get "432 4.3.2 Concurrent
# connections limit exceeded"), 30 messages per minute, 10,000 recipients per
# day. Source: Microsoft Learn, "Message storage and concurrent connection
# throttling for SMTP Authenticated Submission",
# https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/smtp-submission-improvements.
_MICROSOFT365 = ProviderPreset(
    name="microsoft365",
    host="smtp.office365.com",
    port=587,
    security="starttls",
    max_connections=3,
    rate=30 / 60,
    daily_quota=10_000,
    source="https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/"
    "smtp-submission-improvements",
)

# Outlook.com consumer accounts: smtp-mail.outlook.com, port 587, STARTTLS,
# OAuth2 ("Modern Auth") as the authentication method. Source: Microsoft
# Support, "POP, IMAP, and SMTP settings for Outlook.com". Daily limit 5,000
# recipients for Microsoft 365 subscribers, lower and unpublished for other
# accounts. Source: Microsoft Support, "Sending limits in Outlook.com",
# https://support.microsoft.com/en-us/office/sending-limits-in-outlook-com-279ee200-594c-40f0-9ec8-bb6af7735c2e.
# NOTE: Microsoft publishes no session cap or per-minute rate for Outlook.com;
# the Exchange Online figures (3 connections, 30 per minute) are used because
# the service runs on the same platform. The quota of 300 a day for accounts
# without a subscription is a figure reported by users, not published.
_OUTLOOK_COM = ProviderPreset(
    name="outlook.com",
    host="smtp-mail.outlook.com",
    port=587,
    security="starttls",
    max_connections=3,
    rate=30 / 60,
    daily_quota=300,
    source="https://support.microsoft.com/en-us/office/"
    "sending-limits-in-outlook-com-279ee200-594c-40f0-9ec8-bb6af7735c2e",
)

# Amazon SES SMTP interface in us-east-1; other regions use
# email-smtp.<region>.amazonaws.com (pass host=). STARTTLS on 25, 587 or 2587,
# TLS Wrapper on 465 or 2465. Source: Amazon SES Developer Guide, "Connecting
# to an Amazon SES SMTP endpoint",
# https://docs.aws.amazon.com/ses/latest/dg/smtp-connect.html.
# Quotas are per account and region: in the sandbox 200 messages per 24 hours
# and 1 message per second; out of the sandbox they depend on the account.
# Source: "Service quotas in Amazon SES",
# https://docs.aws.amazon.com/ses/latest/dg/quotas.html.
# NOTE: the sandbox figures are used; pass rate= and max_connections= for an
# account with higher quotas. SES publishes no cap on SMTP sessions.
_SES = ProviderPreset(
    name="ses",
    host="email-smtp.us-east-1.amazonaws.com",
    port=587,
    security="starttls",
    max_connections=10,
    rate=1.0,
    daily_quota=200,
    source="https://docs.aws.amazon.com/ses/latest/dg/quotas.html",
)

PROVIDERS: dict[str, ProviderPreset] = {
    preset.name: preset
    for preset in (_GMAIL, _GOOGLE_WORKSPACE, _MICROSOFT365, _OUTLOOK_COM, _SES)
}

_ALIASES = {
    "google": "gmail",
    "workspace": "google-workspace",
    "office365": "microsoft365",
    "microsoft-365": "microsoft365",
    "m365": "microsoft365",
    "exchange-online": "microsoft365",
    "outlook": "outlook.com",
    "hotmail": "outlook.com",
    "amazon-ses": "ses",
}

# Hosts whose preset is chosen when the caller names no provider. smtp.gmail.com
# maps to the consumer preset, whose limits are the lower ones.
_BY_HOST = {
    "smtp.gmail.com": "gmail",
    "smtp.office365.com": "microsoft365",
    "smtp-mail.outlook.com": "outlook.com",
}


def get_provider(name: str) -> ProviderPreset:
    """Return the preset called ``name`` (case-insensitive, common aliases accepted)."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in PROVIDERS:
        raise ConfigurationError(
            f"Unknown provider {name!r}: use one of {', '.join(sorted(PROVIDERS))}."
        )
    return PROVIDERS[key]


def provider_for_host(host: str) -> ProviderPreset | None:
    """Return the preset of a known submission host, such as smtp.office365.com."""
    host = host.strip().lower().rstrip(".")
    if host in _BY_HOST:
        return PROVIDERS[_BY_HOST[host]]
    if host.startswith("email-smtp.") and host.endswith(".amazonaws.com"):
        return PROVIDERS["ses"]
    return None
