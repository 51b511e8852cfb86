"""SMTP connection settings: :class:`SMTPConfig`, built from a URL or the environment."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Literal, Union
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from .errors import ConfigurationError

__all__ = ["SMTPConfig", "resolve_smtp", "DEFAULT_TIMEOUT", "DEFAULT_CONNECT_TIMEOUT"]

Security = Literal["none", "starttls", "tls"]
#: A callable that returns a current OAuth 2.0 access token for SASL XOAUTH2.
TokenProvider = Callable[[], str]

#: Seconds to wait for any one reply. smtplib's own default is to wait forever.
DEFAULT_TIMEOUT = 30.0
#: Seconds to wait for the TCP connection and the greeting.
DEFAULT_CONNECT_TIMEOUT = 15.0

URL_ENV = "MAILKIT_SMTP_URL"
PASSWORD_ENV = "MAILKIT_SMTP_PASSWORD"

_SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}

_NOT_CONFIGURED = (
    "No SMTP server is configured. Pass smtp='smtp+starttls://user@host:587' "
    "(or a mailkit.SMTPConfig), or set the {url_env} environment variable and put "
    "the password in {password_env}. To try mailkit without an account, start the "
    "local capture server: `with mailkit.LocalSMTPServer() as server: "
    "send_bulk(..., smtp=server.url)`, or run `mailkit serve` in a terminal."
)


@dataclasses.dataclass(frozen=True)
class SMTPConfig:
    """Where and how to connect to an SMTP server.

    ``security`` is ``"starttls"`` (upgrade a plain connection, usually port 587),
    ``"tls"`` (implicit TLS from the first byte, usually port 465) or ``"none"``.
    Certificates and host names are verified unless ``tls_verify`` is False;
    ``cafile`` adds a CA bundle to trust, for relays with a private CA.
    ``token_provider`` logs in with SASL XOAUTH2 instead of a password: it is
    called for every new connection, and once more when the server rejects a
    token. ``provider`` names a preset of :mod:`mailkit.providers` whose
    connection and rate limits the engine applies. The password and the token
    never appear in ``repr`` or ``str``.
    """

    host: str
    port: int = 25
    security: Security = "none"
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False, compare=False)
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    local_hostname: str | None = None
    cafile: str | None = None
    tls_verify: bool = True
    allow_insecure_auth: bool = False
    token_provider: TokenProvider | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    provider: str | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigurationError("SMTPConfig needs a host name or address.")
        if self.security not in ("none", "starttls", "tls"):
            raise ConfigurationError(
                f"Invalid security {self.security!r}: use 'starttls', 'tls' or 'none'."
            )
        if not 0 < int(self.port) < 65536:
            raise ConfigurationError(f"Invalid port {self.port!r}: use 1 to 65535.")
        for name in ("tls_verify", "allow_insecure_auth"):
            value = getattr(self, name)
            # A string such as "false" is truthy: allow_insecure_auth="false"
            # would send the password without TLS.
            if not isinstance(value, (bool, np.bool_)):
                raise ConfigurationError(
                    f"Invalid {name}={value!r}: give True or False (a bool, not "
                    f"{type(value).__name__})."
                )
            object.__setattr__(self, name, bool(value))
        for name in ("timeout", "connect_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise ConfigurationError(
                    f"Invalid {name} {value!r}: give a finite number of seconds above 0."
                )
        if self.token_provider is not None and not callable(self.token_provider):
            raise ConfigurationError(
                "Invalid token_provider: pass a callable that returns an OAuth 2.0 "
                "access token as a string."
            )
        if self.token_provider is not None and not self.username:
            raise ConfigurationError(
                "token_provider needs username=: XOAUTH2 sends the user name with "
                "the token."
            )
        if self.provider is not None:
            from .providers import get_provider

            get_provider(self.provider)

    def __repr__(self) -> str:
        fields = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.repr
        ]
        if self.password:
            fields.insert(4, "password='***'")
        if self.token_provider is not None:
            fields.append("token_provider=<set>")
        return f"SMTPConfig({', '.join(fields)})"

    @property
    def url(self) -> str:
        """The settings as a URL, without the password."""
        scheme = {v[0]: k for k, v in _SCHEMES.items()}[self.security]
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"

    @classmethod
    def from_provider(cls, name: str, **settings) -> SMTPConfig:
        """Build the settings of a provider preset, such as ``"gmail"``.

        The preset gives host, port and TLS mode, and the user name for
        providers that fix one (SendGrid's ``apikey``); ``settings`` add the
        credentials (``username`` with ``password`` or ``token_provider``) and
        may override any field. The engine applies the preset's limits.
        """
        from .providers import get_provider

        preset = get_provider(name)
        fields = {
            "host": preset.host,
            "port": preset.port,
            "security": preset.security,
            "provider": preset.name,
        }
        if preset.username:
            fields["username"] = preset.username
        fields.update(settings)
        return cls(**fields)

    @classmethod
    def from_url(cls, url: str, *, password: str | None = None, **overrides) -> SMTPConfig:
        """Parse ``smtp://host:port``, ``smtp+starttls://user@host:587`` or
        ``smtps://user@host:465``.

        The password is taken from ``password``, else from the URL, else from the
        ``MAILKIT_SMTP_PASSWORD`` environment variable. Query parameters
        ``timeout`` and ``connect_timeout`` (seconds) are accepted.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigurationError(
                f"Invalid SMTP URL scheme {parts.scheme!r} in {_mask_url(url)!r}: use "
                "smtp://, smtp+starttls:// or smtps://."
            )
        security, default_port = _SCHEMES[scheme]
        try:
            port = parts.port or default_port
        except ValueError as exc:
            raise ConfigurationError(
                f"Invalid port in SMTP URL {_mask_url(url)!r}."
            ) from exc
        if not parts.hostname:
            raise ConfigurationError(f"The SMTP URL {_mask_url(url)!r} has no host.")
        settings: dict = {
            "host": parts.hostname,
            "port": port,
            "security": security,
            "username": unquote(parts.username) if parts.username else None,
            "password": password
            or (unquote(parts.password) if parts.password else None)
            or os.environ.get(PASSWORD_ENV)
            or None,
        }
        for key, values in parse_qs(parts.query).items():
            if key not in ("timeout", "connect_timeout"):
                raise ConfigurationError(
                    f"Unknown SMTP URL parameter {key!r}: use timeout or connect_timeout."
                )
            try:
                settings[key] = float(values[-1])
            except ValueError as exc:
                raise ConfigurationError(
                    f"Invalid {key} {values[-1]!r} in the SMTP URL: give seconds."
                ) from exc
        settings.update(overrides)
        return cls(**settings)


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def resolve_smtp(smtp: Union[str, SMTPConfig, None]) -> SMTPConfig:
    """Return the settings for ``smtp``: a config, a URL, or None for the environment."""
    if isinstance(smtp, SMTPConfig):
        return smtp
    if isinstance(smtp, str):
        return SMTPConfig.from_url(smtp)
    if smtp is not None:
        raise ConfigurationError(
            f"Invalid smtp={type(smtp).__name__}: pass a URL string or a mailkit.SMTPConfig."
        )
    url = os.environ.get(URL_ENV)
    if url:
        return SMTPConfig.from_url(url)
    raise ConfigurationError(
        _NOT_CONFIGURED.format(url_env=URL_ENV, password_env=PASSWORD_ENV)
    )
