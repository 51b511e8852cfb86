"""Settings and limits of common mail providers: ``provider="gmail"`` and others.

A preset gives the submission host, port and TLS mode, and the limits that the
engine applies unless the caller overrides them: concurrent connections, a
message rate and a daily quota. Each figure comes from the provider's own
documentation, named beside it; where a provider publishes no figure, the
comment says so and the value is a cautious choice.

Providers change their limits without notice, and many depend on the account
(trial, sandbox, reputation), so check the named page for your account.

NOTE: the hosts and ports are the ones the providers publish for SMTP
submission. They were not checked against the live servers from this repository.
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
    ``display_name`` is the provider's name in the settings form, ``username``
    a fixed user name that the provider expects (empty when the user name is the
    account's address), and ``hint`` a note on logging in that the form shows.
    """

    name: str
    display_name: str
    host: str
    port: int
    security: Security
    max_connections: int
    rate: float | None
    daily_quota: int | None
    source: str
    username: str = ""
    hint: str = ""


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
    display_name="Gmail",
    host="smtp.gmail.com",
    port=587,
    security="starttls",
    max_connections=10,
    rate=None,
    daily_quota=500,
    source="third-party guides; Google publishes no SMTP session cap or rate",
    hint="Google accepts an app password here, not the account password; for "
    "OAuth 2.0, pass SMTPConfig(token_provider=...) in code.",
)

# Google Workspace accounts use the same host. Daily sending limit 2,000
# messages (500 for trial accounts), over a rolling 24-hour period; at most 100
# recipients per message sent over SMTP. Source: Google Workspace Admin Help,
# "Gmail sending limits in Google Workspace",
# https://support.google.com/a/answer/166852.
# NOTE: no session cap or rate is published; the same choices as for Gmail apply.
_GOOGLE_WORKSPACE = ProviderPreset(
    name="google-workspace",
    display_name="Google Workspace",
    host="smtp.gmail.com",
    port=587,
    security="starttls",
    max_connections=10,
    rate=None,
    daily_quota=2000,
    source="https://support.google.com/a/answer/166852",
    hint="Google accepts an app password here, not the account password; for "
    "OAuth 2.0, pass SMTPConfig(token_provider=...) in code.",
)

# Microsoft 365 (Exchange Online) SMTP AUTH client submission: up to three
# concurrent connections per mailbox (more get "432 4.3.2 Concurrent
# connections limit exceeded"), 30 messages per minute, 10,000 recipients per
# day. Source: Microsoft Learn, "Message storage and concurrent connection
# throttling for SMTP Authenticated Submission",
# https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/smtp-submission-improvements.
_MICROSOFT365 = ProviderPreset(
    name="microsoft365",
    display_name="Microsoft 365",
    host="smtp.office365.com",
    port=587,
    security="starttls",
    max_connections=3,
    rate=30 / 60,
    daily_quota=10_000,
    source="https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/"
    "smtp-submission-improvements",
    hint="SMTP AUTH must be enabled for the mailbox, or the login fails with 535 "
    "5.7.139.",
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
    display_name="Outlook.com",
    host="smtp-mail.outlook.com",
    port=587,
    security="starttls",
    max_connections=3,
    rate=30 / 60,
    daily_quota=300,
    source="https://support.microsoft.com/en-us/office/"
    "sending-limits-in-outlook-com-279ee200-594c-40f0-9ec8-bb6af7735c2e",
    hint="Microsoft gives OAuth 2.0 as the login method for Outlook.com, so a "
    "password may be rejected; for OAuth 2.0, pass SMTPConfig(token_provider=...) "
    "in code.",
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
    display_name="Amazon SES (us-east-1)",
    host="email-smtp.us-east-1.amazonaws.com",
    port=587,
    security="starttls",
    max_connections=10,
    rate=1.0,
    daily_quota=200,
    source="https://docs.aws.amazon.com/ses/latest/dg/quotas.html",
    hint="The user name and password are SES SMTP credentials, not AWS access "
    "keys. Other regions use the host email-smtp.<region>.amazonaws.com.",
)

# Yahoo Mail: smtp.mail.yahoo.com takes implicit TLS on 465 (STARTTLS on 587)
# and an app password for SMTP clients, as setup guides give it (for example
# https://xenocept.com/docs/email-setup/yahoo.html).
# NOTE: Yahoo publishes no session cap, rate or daily quota for consumer
# accounts. The quota of 500 messages is a cautious choice: it is the figure
# that Yahoo publishes for its Business Mail product (help.yahoo.com, "SMTP
# sending limits", SLN17518). The connection cap is mailkit's default.
_YAHOO = ProviderPreset(
    name="yahoo",
    display_name="Yahoo Mail",
    host="smtp.mail.yahoo.com",
    port=465,
    security="tls",
    max_connections=10,
    rate=None,
    daily_quota=500,
    source="https://help.yahoo.com/mkb/article.php?page=content&y=PROD_YSB_BZMAIL"
    "&locale=en_US&id=SLN17518 (the Yahoo Business Mail figure)",
    hint="Yahoo needs an app password here, not the account password.",
)

# iCloud Mail: smtp.mail.me.com with STARTTLS on 587 and an app-specific
# password. At most 1,000 messages and 1,000 recipients a day, and 500
# recipients per message. Source: Apple Support, "Mailbox size and message
# sending limits in iCloud", https://support.apple.com/en-ca/102198.
# NOTE: Apple publishes no session cap or rate; the connection cap is mailkit's
# default and the rate is left to adaptive throttling.
_ICLOUD = ProviderPreset(
    name="icloud",
    display_name="iCloud Mail",
    host="smtp.mail.me.com",
    port=587,
    security="starttls",
    max_connections=10,
    rate=None,
    daily_quota=1000,
    source="https://support.apple.com/en-ca/102198",
    hint="iCloud needs an app-specific password here, not the Apple Account "
    "password.",
)

# Fastmail: smtp.fastmail.com with implicit TLS on 465 and an app password.
# NOTE: Fastmail lists its fair-use limits on
# https://www.fastmail.com/help/account/limits.html, but the sending figures on
# that page were not checked, so no rate or quota is set. The connection cap is
# mailkit's default.
_FASTMAIL = ProviderPreset(
    name="fastmail",
    display_name="Fastmail",
    host="smtp.fastmail.com",
    port=465,
    security="tls",
    max_connections=10,
    rate=None,
    daily_quota=None,
    source="no sending figures checked; see "
    "https://www.fastmail.com/help/account/limits.html",
    hint="Fastmail needs an app password here, not the account password.",
)

# Twilio SendGrid SMTP relay: smtp.sendgrid.net, STARTTLS on 587 (also 25 and
# 2525, implicit TLS on 465), the user name "apikey" and an API key as the
# password. SendGrid accepts up to 5,000 messages per SMTP connection and
# 10,000 concurrent connections from one server. Source: Twilio SendGrid docs,
# "Integrating with the SMTP API",
# https://www.twilio.com/docs/sendgrid/for-developers/sending-email/integrating-with-the-smtp-api.
# NOTE: the daily quota depends on the plan, so none is set. The cap of 10
# connections is mailkit's default, far below SendGrid's.
_SENDGRID = ProviderPreset(
    name="sendgrid",
    display_name="SendGrid",
    host="smtp.sendgrid.net",
    port=587,
    security="starttls",
    max_connections=10,
    rate=None,
    daily_quota=None,
    source="https://www.twilio.com/docs/sendgrid/for-developers/sending-email/"
    "integrating-with-the-smtp-api",
    username="apikey",
    hint="The user name is the word apikey and the password is an API key.",
)

PROVIDERS: dict[str, ProviderPreset] = {
    preset.name: preset
    for preset in (
        _GMAIL,
        _GOOGLE_WORKSPACE,
        _MICROSOFT365,
        _OUTLOOK_COM,
        _SES,
        _YAHOO,
        _ICLOUD,
        _FASTMAIL,
        _SENDGRID,
    )
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
    "smtp.mail.yahoo.com": "yahoo",
    "smtp.mail.me.com": "icloud",
    "smtp.fastmail.com": "fastmail",
    "smtp.sendgrid.net": "sendgrid",
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
