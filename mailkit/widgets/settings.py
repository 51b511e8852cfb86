"""The SMTP settings form: server, security, login, presets and a connection test."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ipywidgets as w

from ..config import PASSWORD_ENV, URL_ENV, SMTPConfig, resolve_smtp
from ..errors import ConfigurationError, MailkitError
from ..transport import Connection
from .background import BackgroundTask
from .feedback import error_html, info_html, success_html, warning_html

__all__ = ["PRESETS", "Preset", "SMTPSettings"]

logger = logging.getLogger(__name__)

SECURITY_OPTIONS = [
    ("STARTTLS (usually port 587)", "starttls"),
    ("TLS from the start (usually port 465)", "tls"),
    ("none (local test servers only)", "none"),
]
_DEFAULT_PORTS = {"starttls": 587, "tls": 465}
_WIDE = w.Layout(width="32em")
_STYLE = {"description_width": "9em"}


@dataclass(frozen=True)
class Preset:
    """Server settings of one provider, and a hint shown when it is chosen."""

    host: str
    port: int
    security: str
    username: str = ""
    hint: str = ""


# NOTE: host names and ports are the ones the providers publish for SMTP
# submission; they were not checked against a live server from this repository.
PRESETS: dict[str, Preset | None] = {
    "Custom": None,
    "Local capture server (127.0.0.1:1025)": Preset(
        "127.0.0.1",
        1025,
        "none",
        hint="Start it with `mailkit serve --port 1025` or mailkit.LocalSMTPServer.",
    ),
    "Gmail / Google Workspace": Preset(
        "smtp.gmail.com",
        587,
        "starttls",
        hint="Gmail accepts an app password here, not the account password.",
    ),
    "Microsoft 365": Preset(
        "smtp.office365.com",
        587,
        "starttls",
        hint="SMTP AUTH must be enabled for the mailbox, or the login fails with 535 "
        "5.7.139.",
    ),
    "Outlook.com": Preset("smtp-mail.outlook.com", 587, "starttls"),
    "Yahoo Mail": Preset(
        "smtp.mail.yahoo.com", 465, "tls", hint="Yahoo expects an app password."
    ),
    "iCloud Mail": Preset(
        "smtp.mail.me.com", 587, "starttls", hint="iCloud expects an app password."
    ),
    "Fastmail": Preset(
        "smtp.fastmail.com", 465, "tls", hint="Fastmail expects an app password."
    ),
    "SendGrid": Preset(
        "smtp.sendgrid.net",
        587,
        "starttls",
        username="apikey",
        hint="The user name is the word apikey and the password is an API key.",
    ),
}


class SMTPSettings(w.VBox):
    """A form for the SMTP server: host, port, security, user and password.

    ``smtp`` fills the form from a URL or a :class:`mailkit.SMTPConfig`; without
    it, the form starts from the ``MAILKIT_SMTP_URL`` environment variable when
    that is set. :meth:`config` returns the settings for
    ``send_bulk(smtp=...)``.

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
            options=list(PRESETS), value="Custom", description="Provider",
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
        self.test_button = w.Button(description="Test connection", icon="plug")
        self.status = w.HTML()

        for widget, name in (
            (self.preset, "preset"),
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
        for field in (self.host, self.port, self.security, self.username):
            field.observe(self._on_field_edit, names="value")
        self.security.observe(self._on_security, names="value")
        self.password.observe(self._on_password, names="value")
        self.verify_tls.observe(self._on_verify_tls, names="value")
        self.forget_button.on_click(lambda _: self.forget_password())
        self.test_button.on_click(lambda _: self._start_test())

        self._fill(smtp)
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

    def _on_preset(self, change: dict) -> None:
        preset = PRESETS[change["new"]]
        self.hint.value = info_html(preset.hint) if preset and preset.hint else ""
        if preset is None:
            return
        self._applying_preset = True
        try:
            self.host.value = preset.host
            self.security.value = preset.security
            self.port.value = preset.port
            if preset.username or not self.username.value:
                self.username.value = preset.username
        finally:
            self._applying_preset = False
        self.status.value = ""

    def _on_field_edit(self, change: dict) -> None:
        if self._applying_preset:
            return
        preset = PRESETS[self.preset.value]
        if preset is not None and (
            self.host.value != preset.host
            or self.port.value != preset.port
            or self.security.value != preset.security
        ):
            self.preset.value = "Custom"

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
