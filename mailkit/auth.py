"""Logging in to an SMTP server with one AUTH command per try.

``smtplib.SMTP.login`` tries every mechanism the server offers in turn, so one
wrong password costs two or three AUTH commands and counts that many times
against the server's login limits. :func:`log_in` picks one mechanism and sends
one AUTH. With a token provider it uses SASL XOAUTH2 (the format that Google and
Microsoft document) and fetches a new token once when the server rejects one.
"""

from __future__ import annotations

import logging
import smtplib
from typing import Callable

from .config import SMTPConfig
from .errors import AuthenticationError, ConfigurationError, SMTPSessionRefusedError

__all__ = ["explain_rejected_login", "log_in", "xoauth2_response"]

logger = logging.getLogger(__name__)

# Preferred first. Every login runs over TLS unless allow_insecure_auth is set,
# so PLAIN exposes nothing that CRAM-MD5 would hide.
_PASSWORD_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


def xoauth2_response(username: str, token: str) -> str:
    """Return the SASL XOAUTH2 initial client response (before base64)."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01"


def offered_mechanisms(smtp: smtplib.SMTP) -> tuple[str, ...]:
    """Return the AUTH mechanisms of the last EHLO reply, upper case."""
    return tuple(smtp.esmtp_features.get("auth", "").upper().split())


def log_in(smtp: smtplib.SMTP, config: SMTPConfig) -> str:
    """Authenticate the session and return the mechanism used.

    Raises AuthenticationError when the server rejects the credentials (5xx),
    SMTPSessionRefusedError for a temporary refusal (4xx, such as "454 4.7.0 Too
    many login attempts") and ConfigurationError when the server offers no
    usable mechanism or the token provider fails.
    """
    offered = offered_mechanisms(smtp)
    if not offered:
        raise ConfigurationError(
            f"{config.host}:{config.port} does not offer AUTH on this connection; "
            "many servers offer it only after STARTTLS (smtp+starttls://)."
        )
    if config.token_provider is not None:
        return _log_in_xoauth2(smtp, config, offered)
    return _log_in_password(smtp, config, offered)


def _log_in_password(smtp: smtplib.SMTP, config: SMTPConfig, offered: tuple[str, ...]) -> str:
    usable = [name for name in _PASSWORD_MECHANISMS if name in offered]
    if not usable:
        raise ConfigurationError(
            f"{config.host} offers only AUTH {' '.join(offered)}, and mailkit logs in "
            "with a password through PLAIN, LOGIN or CRAM-MD5. For XOAUTH2 pass "
            "token_provider= (a callable that returns an OAuth 2.0 access token)."
        )
    mechanism = usable[0]
    smtp.user = config.username or ""
    smtp.password = config.password or ""
    authobject = getattr(smtp, "auth_" + mechanism.lower().replace("-", "_"))
    try:
        smtp.auth(mechanism, authobject)
    except smtplib.SMTPAuthenticationError as exc:
        raise _rejected(config, exc, mechanism, offered) from exc
    finally:
        # smtplib keeps the credentials on the object for its auth_* helpers.
        smtp.password = ""
    return mechanism


def _log_in_xoauth2(smtp: smtplib.SMTP, config: SMTPConfig, offered: tuple[str, ...]) -> str:
    if "XOAUTH2" not in offered:
        raise ConfigurationError(
            f"{config.host} does not offer AUTH XOAUTH2 (it offers "
            f"{' '.join(offered)}), so token_provider cannot be used with it; log in "
            "with username= and password= instead."
        )
    for try_number in (1, 2):
        response = xoauth2_response(config.username or "", _fetch_token(config))
        try:
            smtp.auth("XOAUTH2", _xoauth2_object(response))
        except smtplib.SMTPAuthenticationError as exc:
            if try_number == 2 or not 500 <= exc.smtp_code < 600:
                raise _rejected(config, exc, "XOAUTH2", offered) from exc
            logger.info(
                "%s rejected the XOAUTH2 token for %r (%s); fetching a new token and "
                "trying once more",
                config.host,
                config.username,
                exc.smtp_code,
            )
        else:
            return "XOAUTH2"
    raise AssertionError("unreachable")  # pragma: no cover


def _xoauth2_object(response: str) -> Callable[..., str]:
    # When XOAUTH2 fails, the server first sends a 334 challenge with a JSON error
    # and expects an empty line; its 535 reply follows.
    def authobject(challenge: bytes | None = None) -> str:
        return response if challenge is None else ""

    return authobject


def _fetch_token(config: SMTPConfig) -> str:
    provider = config.token_provider
    assert provider is not None
    try:
        token = provider()
    except Exception as exc:  # noqa: BLE001 - any failure of the caller's callable
        # The exception text is left out because token libraries may put
        # credentials into it; it stays available as __cause__.
        raise ConfigurationError(
            f"token_provider raised {type(exc).__name__}, so no OAuth 2.0 token was "
            f"available for {config.username!r}."
        ) from exc
    if not isinstance(token, str) or not token:
        raise ConfigurationError(
            f"token_provider returned {type(token).__name__} instead of a non-empty "
            "access token string."
        )
    return token


def _rejected(
    config: SMTPConfig,
    exc: smtplib.SMTPAuthenticationError,
    mechanism: str,
    offered: tuple[str, ...],
) -> AuthenticationError | SMTPSessionRefusedError:
    reply = _decode(exc.smtp_error)
    if 400 <= exc.smtp_code < 500:
        return SMTPSessionRefusedError(
            f"{config.host} refused the login for now: {exc.smtp_code} {reply}",
            code=exc.smtp_code,
            reply=reply,
        )
    return AuthenticationError(
        explain_rejected_login(config, exc.smtp_code, reply, mechanism, offered),
        code=exc.smtp_code,
        reply=reply,
    )


def explain_rejected_login(
    config: SMTPConfig, code: int, reply: str, mechanism: str, offered: tuple[str, ...]
) -> str:
    """Return a plain explanation of a rejected login, with what to do next."""
    text = f"{config.host} rejected the login for {config.username!r}: {code} {reply}."
    host = config.host.lower()
    lowered = reply.lower()
    if "5.7.139" in reply or host.endswith(("office365.com", "outlook.com")):
        return text + (
            " Microsoft 365 answers 535 5.7.139 when SMTP AUTH (basic authentication) "
            "is turned off for the mailbox or the tenant: an administrator can turn on "
            "Authenticated SMTP for the mailbox, or log in with OAuth 2.0 through "
            "XOAUTH2 by passing token_provider= (a callable that returns an access "
            "token with the SMTP.Send permission)."
        )
    if host.endswith(("gmail.com", "googlemail.com")) or "support.google.com" in lowered:
        return text + (
            " Gmail does not accept the account password here: use an app password "
            "(which needs 2-Step Verification), or OAuth 2.0 through XOAUTH2 by "
            "passing token_provider=."
        )
    if mechanism == "XOAUTH2":
        return text + (
            " The server also rejected a new token from token_provider: check that "
            "the token is issued for this user and allows sending over SMTP."
        )
    if "XOAUTH2" in offered:
        return text + (
            " Check the user name and password; the server also offers XOAUTH2, "
            "which token_provider= uses."
        )
    return text + " Check the user name and password."


def _decode(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return str(reply)
