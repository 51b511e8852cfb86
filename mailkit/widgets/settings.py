"""The SMTP settings form: server, security, login, provider and a connection test."""

from __future__ import annotations

import logging
import os

import ipywidgets as w

from ..config import PASSWORD_ENV, URL_ENV, SMTPConfig, resolve_smtp
from ..errors import ConfigurationError, MailkitError
from ..providers import PROVIDERS, ProviderPreset, get_provider, provider_for_host
from ..transport import Connection
from .background import BackgroundTask
from .feedback import error_html, info_html, success_html, warning_html

__all__ = ["CUSTOM", "LOCAL_SERVER", "SMTPSettings"]

logger = logging.getLogger(__name__)

SECURITY_OPTIONS = [
    ("STARTTLS (usually port 587)", "starttls"),
    ("TLS from the start (usually port 465)", "tls"),
    ("none (local test servers only)", "none"),
]
_DEFAULT_PORTS = {"starttls": 587, "tls": 465}
_WIDE = w.Layout(width="32em")
_STYLE = {"description_width": "9em"}

#: Value of the Provider dropdown for a server typed by hand.
CUSTOM = "custom"
#: Value of the Provider dropdown for mailkit's capture server on 127.0.0.1:1025,
#: the address that ``mailkit serve`` listens on by default.
LOCAL_SERVER = "local"
_LOCAL_HOST = "127.0.0.1"
_LOCAL_PORT = 1025
_LOCAL_HINT = "Start it with `mailkit serve --port 1025` or mailkit.LocalSMTPServer."


def _provider_options() -> list[tuple[str, str]]:
    # The provider names of mailkit.providers are the dropdown's values, so
    # the form's choice is the name that send_bulk(provider=...) takes.
    options = [
        ("Custom", CUSTOM),
        (f"Local capture server ({_LOCAL_HOST}:{_LOCAL_PORT})", LOCAL_SERVER),
    ]
    options += [(preset.display_name, name) for name, preset in PROVIDERS.items()]
    return options


def _describe_limits(preset: ProviderPreset) -> str:
    if preset.rate is None:
        rate = "no message rate (adaptive throttling only)"
    elif preset.rate < 1:
        rate = f"{preset.rate * 60:g} message(s) per minute"
    else:
        rate = f"{preset.rate:g} message(s) per second"
    if preset.daily_quota is None:
        quota = "no daily quota"
    else:
        quota = f"{preset.daily_quota:,} message(s) per 24 hours"
    return (
        f"at most {preset.max_connections} connection(s), {rate}, {quota} "
        f"(source: {preset.source})"
    )


class SMTPSettings(w.VBox):
    """A form for the SMTP server: host, port, security, user and password.

    ``smtp`` fills the form from a URL or a :class:`mailkit.SMTPConfig`; without
    it, the form starts from the ``MAILKIT_SMTP_URL`` environment variable when
    that is set. :meth:`config` returns the settings for
    ``send_bulk(smtp=...)``.

    The Provider dropdown lists the presets of :mod:`mailkit.providers`, and
    choosing one fills host, port, security and a fixed user name. Its value is
    the provider's name, which :attr:`provider` returns and :meth:`config`
    passes on as ``SMTPConfig.provider``, so a batch sent with these settings
    gets that provider's connection cap, rate and daily quota, as with
    ``send_bulk(provider=...)``. Editing the host or port afterwards keeps the
    provider and its limits (for another SES region, say), and the form warns
    when the host is not the provider's. "Custom" sends with no preset, unless
    the host is a known provider's host, which selects its preset by itself.

    The password never stays in the widget. The form receives it when the
    field loses focus or Enter is pressed, then moves it into this object's
    memory and clears the field. So saved widget state, notebook files and
    outputs never contain it. With an empty password field, the
    ``MAILKIT_SMTP_PASSWORD`` environment variable is used.
    """

    def __init__(self, smtp: str | SMTPConfig | None = None) -> None:
        self._password: str | None = None
        self._applying_preset = False
        self._test_task = BackgroundTask("connection-test")

        self.preset = w.Dropdown(
            options=_provider_options(), value=CUSTOM, description="Provider",
            layout=_WIDE, style=_STYLE,
        )
        self.host = w.Text(
            description="Host", placeholder="smtp.example.com", layout=_WIDE, style=_STYLE
        )
        self.port = w.BoundedIntText(
            value=587, min=1, max=65535, description="Port", style=_STYLE
        )
        self.security = w.Dropdown(
            options=SECURITY_OPTIONS, value="starttls", description="Security",
            layout=_WIDE, style=_STYLE,
        )
        self.username = w.Text(
            description="User", placeholder="you@example.com (empty: no login)",
            layout=_WIDE, style=_STYLE,
        )
        self.password = w.Password(
            description="Password", continuous_update=False, layout=_WIDE, style=_STYLE,
            placeholder="kept in memory only, never saved",
        )
        self.password_state = w.HTML()
        self.forget_button = w.Button(description="Forget password", disabled=True)
        self.timeout = w.BoundedFloatText(
            value=30.0, min=1.0, max=600.0, description="Timeout (s)", style=_STYLE
        )
        self.verify_tls = w.Checkbox(
            value=True, description="Verify TLS certificates", indent=False
        )
        self.cafile = w.Text(
            description="CA file", placeholder="optional: ca.pem of a private CA",
            layout=_WIDE, style=_STYLE,
        )
        self.allow_insecure_auth = w.Checkbox(
            value=False, description="Allow login without TLS (test servers)",
            indent=False,
        )
        self.hint = w.HTML()
        self.limits = w.HTML()
        self.test_button = w.Button(description="Test connection", icon="plug")
        self.status = w.HTML()

        for widget, name in (
            (self.preset, "preset"),
            (self.limits, "provider-limits"),
            (self.host, "host"),
            (self.port, "port"),
            (self.security, "security"),
            (self.username, "user"),
            (self.password, "password"),
            (self.test_button, "test-connection"),
            (self.status, "settings-status"),
        ):
            widget.add_class(f"mailkit-{name}")

        advanced = w.Accordion(
            children=[
                w.VBox(
                    [self.timeout, self.verify_tls, self.cafile, self.allow_insecure_auth]
                )
            ],
            titles=("Advanced",),
        )
        super().__init__(
            [
                self.preset,
                self.hint,
                self.limits,
                self.host,
                self.port,
                self.security,
                self.username,
                w.HBox([self.password, self.forget_button]),
                self.password_state,
                advanced,
                self.test_button,
                self.status,
            ]
        )
        self.add_class("mailkit-settings")

        self.preset.observe(self._on_preset, names="value")
        for field in (self.host, self.port, self.security):
            field.observe(self._on_field_edit, names="value")
        self.security.observe(self._on_security, names="value")
        self.password.observe(self._on_password, names="value")
        self.verify_tls.observe(self._on_verify_tls, names="value")
        self.forget_button.on_click(lambda _: self.forget_password())
        self.test_button.on_click(lambda _: self._start_test())

        self._fill(smtp)
        self._show_provider()
        self._show_password_state()

    # -- filling the form ---------------------------------------------------------

    def _fill(self, smtp: str | SMTPConfig | None) -> None:
        if smtp is None and not os.environ.get(URL_ENV):
            return
        try:
            config = resolve_smtp(smtp)
        except ConfigurationError as exc:
            self.status.value = error_html(str(exc))
            return
        # Choosing the provider first fills its fields, which the config's own
        # values then replace.
        if config.provider:
            self.preset.value = get_provider(config.provider).name
        else:
            by_host = provider_for_host(config.host)
            if by_host is not None:
                self.preset.value = by_host.name
        self.host.value = config.host
        self.security.value = config.security
        self.port.value = config.port
        self.username.value = config.username or ""
        self.timeout.value = config.timeout
        self.verify_tls.value = config.tls_verify
        self.cafile.value = config.cafile or ""
        self.allow_insecure_auth.value = config.allow_insecure_auth
        if config.password and config.password != os.environ.get(PASSWORD_ENV):
            self._password = config.password

    @property
    def provider(self) -> str | None:
        """The name of the chosen provider preset; None for Custom and the
        local capture server."""
        if self.preset.value in (CUSTOM, LOCAL_SERVER):
            return None
        return self.preset.value

    def _on_preset(self, change: dict) -> None:
        choice = change["new"]
        if choice == CUSTOM:
            self._show_provider()
            return
        if choice == LOCAL_SERVER:
            host, port, security, username = _LOCAL_HOST, _LOCAL_PORT, "none", ""
        else:
            preset = PROVIDERS[choice]
            host, port, security = preset.host, preset.port, preset.security
            username = preset.username
        self._applying_preset = True
        try:
            self.host.value = host
            self.security.value = security
            self.port.value = port
            if username or not self.username.value or self._has_fixed_username():
                self.username.value = username
        finally:
            self._applying_preset = False
        self.status.value = ""
        self._show_provider()

    def _has_fixed_username(self) -> bool:
        # A user name that another provider fixes, such as SendGrid's apikey,
        # is cleared when the user switches to a provider that has none.
        fixed = {preset.username for preset in PROVIDERS.values() if preset.username}
        return self.username.value in fixed

    def _on_field_edit(self, change: dict) -> None:
        if not self._applying_preset:
            self._show_provider()

    def _show_provider(self) -> None:
        """Show the chosen provider's login hint and the limits a batch gets."""
        choice = self.preset.value
        host = self.host.value.strip()
        by_host = provider_for_host(host) if host else None
        if choice == LOCAL_SERVER:
            self.hint.value = info_html(_LOCAL_HINT)
            self.limits.value = ""
        elif choice == CUSTOM:
            self.hint.value = ""
            self.limits.value = ""
            if by_host is not None:
                name = by_host.display_name
                self.limits.value = info_html(
                    f"{host} is a {name} host, so the {name} limits apply when "
                    f"sending: {_describe_limits(by_host)}."
                )
        else:
            preset = PROVIDERS[choice]
            self.hint.value = info_html(preset.hint) if preset.hint else ""
            name = preset.display_name
            limits = _describe_limits(preset)
            if by_host is preset or host.lower() == preset.host:
                self.limits.value = info_html(
                    f"{name} limits apply when sending: {limits}."
                )
            else:
                self.limits.value = warning_html(
                    f"The host {host or '(empty)'} is not {name}'s host "
                    f"{preset.host}, but the {name} limits still apply when "
                    f"sending: {limits}. Choose Custom for a server without them."
                )

    def _on_security(self, change: dict) -> None:
        # Switch to the usual port of the new mode if the port was the usual
        # one of the old mode. A port chosen by hand is kept.
        if self._applying_preset:
            return
        old_default = _DEFAULT_PORTS.get(change["old"])
        new_default = _DEFAULT_PORTS.get(change["new"])
        if new_default and self.port.value == old_default:
            self.port.value = new_default

    def _on_verify_tls(self, change: dict) -> None:
        if change["new"]:
            self.status.value = ""
        else:
            self.status.value = warning_html(
                "TLS certificates will not be verified: anyone on the network path "
                "can read the messages and the password. Use this only for a test "
                "server, or give the CA file of a private CA instead."
            )

    # -- the password -------------------------------------------------------------

    def _on_password(self, change: dict) -> None:
        value = change["new"]
        if not value:
            return
        self._password = value
        # Clearing the field removes the password from the widget model, which
        # is what saved notebooks and exported widget state contain.
        self.password.value = ""
        self._show_password_state()

    def forget_password(self) -> None:
        """Drop the password kept in memory."""
        self._password = None
        self._show_password_state()

    @property
    def has_password(self) -> bool:
        return bool(self._password)

    def _show_password_state(self) -> None:
        self.forget_button.disabled = not self._password
        if self._password:
            self.password_state.value = info_html(
                "A password is set. It is kept in this kernel's memory only and is "
                "never saved in the notebook."
            )
        elif os.environ.get(PASSWORD_ENV):
            self.password_state.value = info_html(
                f"The password comes from the {PASSWORD_ENV} environment variable."
            )
        else:
            self.password_state.value = ""

    # -- reading the settings -----------------------------------------------------

    def config(self) -> SMTPConfig:
        """Return the form's settings; raises ConfigurationError for invalid ones."""
        host = self.host.value.strip()
        if not host:
            raise ConfigurationError(
                "The SMTP host is missing: enter the server's host name, or choose a "
                "provider."
            )
        if any(ch.isspace() for ch in host) or "://" in host:
            raise ConfigurationError(
                f"Invalid SMTP host {host!r}: enter a host name such as "
                "smtp.example.com, without a scheme or spaces."
            )
        username = self.username.value.strip() or None
        password = self._password or os.environ.get(PASSWORD_ENV) or None
        return SMTPConfig(
            host=host,
            port=int(self.port.value),
            security=self.security.value,
            username=username,
            password=password if username else None,
            timeout=float(self.timeout.value),
            connect_timeout=min(float(self.timeout.value), 15.0),
            cafile=self.cafile.value.strip() or None,
            tls_verify=bool(self.verify_tls.value),
            allow_insecure_auth=bool(self.allow_insecure_auth.value),
            provider=self.provider,
        )

    def __repr__(self) -> str:
        try:
            where = self.config().url
        except ConfigurationError:
            where = "incomplete"
        password = ", password set" if self._password else ""
        return f"SMTPSettings({where}{password})"

    # -- the connection test ------------------------------------------------------

    def _start_test(self) -> None:
        if not self._test_task.start(self.test_connection):
            self.status.value = info_html("A connection test is already running.")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a connection test started by the button; True when none runs."""
        return self._test_task.join(timeout)

    def test_connection(self) -> bool:
        """Connect, start TLS and log in with the form's settings, then disconnect.

        Shows in the form what worked or what failed, and returns True on success.
        """
        self.test_button.disabled = True
        try:
            return self._test_connection()
        finally:
            self.test_button.disabled = False

    def _test_connection(self) -> bool:
        try:
            config = self.config()
        except ConfigurationError as exc:
            self.status.value = error_html(str(exc))
            return False
        self.status.value = info_html(f"Connecting to {config.host}:{config.port} ...")
        connection = Connection(config)
        try:
            connection.open()
        except MailkitError as exc:
            logger.info("connection test to %s failed: %s", config.url, exc)
            self.status.value = error_html(f"The connection test failed. {exc}")
            return False
        except Exception as exc:  # noqa: BLE001 - shown in the form, never raised
            logger.exception("connection test to %s failed", config.url)
            self.status.value = error_html(
                f"The connection test failed: {type(exc).__name__}: {exc}"
            )
            return False
        finally:
            connection.close()
        self.status.value = success_html(_describe_success(config, self._password))
        return True


def _describe_success(config: SMTPConfig, typed_password: str | None) -> str:
    where = f"{config.host}:{config.port}"
    if config.security == "starttls":
        how = "with STARTTLS"
    elif config.security == "tls":
        how = "with TLS"
    else:
        how = "without TLS"
    if config.security != "none":
        how += ", certificate verified" if config.tls_verify else (
            ", certificate NOT verified"
        )
    if config.username:
        login = f" and logged in as {config.username}"
    elif typed_password:
        login = "; no login, because the user name is empty (the password is unused)"
    else:
        login = "; no login, because the user name is empty"
    return f"Connected to {where} {how}{login}. The connection is closed again."
