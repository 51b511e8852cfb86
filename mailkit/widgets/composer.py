"""The compose form: templates, a live preview of any row, preflight and a test send."""

from __future__ import annotations

import json
import keyword
import logging
from typing import Any

import ipywidgets as w
import pandas as pd

from ..addresses import parse_mailbox
from ..api import preview, send_bulk, validate
from ..errors import ConfigurationError, MailkitError, ValidationError
from .background import BackgroundTask
from .feedback import error_html, frame_html, info_html, success_html, warning_html
from .message_view import wire_bytes_html
from .settings import SMTPSettings

__all__ = ["Composer"]

logger = logging.getLogger(__name__)

#: Up to this many rows, the problems table is checked again on every edit;
#: larger frames are checked with the "Check all rows" button and before sending.
AUTO_CHECK_MAX_ROWS = 2_000

_NO_COLUMN = "(none)"
_WIDE = w.Layout(width="100%")
_COLUMN = w.Layout(flex="1 1 30em", min_width="24em", padding="0 0.5em")
_STYLE = {"description_width": "9em"}
# Long header values (a Message-ID) may break anywhere, so that the preview is
# no wider than its column and the text part wraps inside it.
_PREVIEW_STYLE = (
    "<style>.mailkit-composer-preview td, .mailkit-composer-preview pre "
    "{overflow-wrap: anywhere}</style>"
)
# Words that cannot be a bare variable name in a Jinja2 expression.
_JINJA_RESERVED = frozenset(
    {"true", "false", "none", "and", "or", "not", "in", "is", "if", "else"}
)


def field_expression(column: str) -> str:
    """Return the Jinja2 expression that prints ``column`` of the current row."""
    if column.isidentifier() and not keyword.iskeyword(column) and (
        column not in _JINJA_RESERVED
    ):
        return f"{{{{ {column} }}}}"
    return f"{{{{ row[{json.dumps(column, ensure_ascii=False)}] }}}}"


def _guess_recipient_column(columns: list[str]) -> str | None:
    for name in columns:
        if name.lower() in ("email", "e-mail", "mail", "to", "recipient"):
            return name
    for name in columns:
        if "mail" in name.lower():
            return name
    return columns[0] if columns else None


class Composer(w.VBox):
    """A form for the message: sender, recipient column, subject, templates
    and an attachments column.

    The subject, text and HTML fields are Jinja2 templates that see the row's
    columns as variables, like ``send_bulk``'s. With only an HTML template, the
    text part is derived from it. The attachments column contains file paths
    separated by ``;``. The preview shows the chosen row as
    :func:`mailkit.preview` builds it, with its wire bytes, and follows every
    edit. :meth:`options` returns the keyword arguments for ``send_bulk``.
    "Send a test to me" needs ``settings``, an :class:`SMTPSettings` form.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        *,
        settings: SMTPSettings | None = None,
        sender: str = "",
        subject: str = "",
        body: str = "",
        html: str = "",
        to: str | None = None,
        attachments: str | None = None,
    ) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(
                f"Composer expects a pandas DataFrame, got {type(df).__name__}."
            )
        self.df = df
        self.settings = settings
        columns = [str(name) for name in df.columns]
        recipient = to if to is not None else _guess_recipient_column(columns)
        if recipient is not None and recipient not in columns:
            raise ConfigurationError(
                f"The recipient column {recipient!r} is not in the DataFrame; the "
                f"columns are {', '.join(columns)}."
            )
        if attachments is not None and attachments not in columns:
            raise ConfigurationError(
                f"The attachments column {attachments!r} is not in the DataFrame; "
                f"the columns are {', '.join(columns)}."
            )
        self._test_task = BackgroundTask("test-message")

        self.sender = w.Text(
            value=sender, description="From", placeholder="Name <you@example.com>",
            layout=_WIDE, style=_STYLE,
        )
        self.to = w.Dropdown(
            options=columns, value=recipient, description="Recipient column",
            style=_STYLE,
        )
        self.subject = w.Text(
            value=subject, description="Subject", layout=_WIDE, style=_STYLE
        )
        self.body = w.Textarea(
            value=body, description="Text", placeholder="Hello {{ first_name }}, ...",
            layout=w.Layout(width="100%", height="10em"), style=_STYLE,
        )
        self.html = w.Textarea(
            value=html, description="HTML (optional)", layout=w.Layout(
                width="100%", height="8em"
            ), style=_STYLE,
        )
        self.attachments = w.Dropdown(
            options=[_NO_COLUMN, *columns], value=attachments or _NO_COLUMN,
            description="Attachments", style=_STYLE,
            tooltip="column with file paths, several separated by ;",
        )
        self.insert_target = w.ToggleButtons(
            options=[("Subject", "subject"), ("Text", "body"), ("HTML", "html")],
            value="body", description="Insert into",
            style={"description_width": "9em", "button_width": "6em"},
        )
        self.column_buttons = [self._column_button(name) for name in columns]
        self.row = w.IntSlider(
            value=0, min=0, max=max(len(df) - 1, 0), description="Preview row",
            disabled=len(df) == 0, continuous_update=False, style=_STYLE,
        )
        self.row_label = w.HTML()
        self.preview = w.HTML(layout=w.Layout(overflow="auto"))
        self.check_button = w.Button(
            description="Check all rows", icon="check", layout=w.Layout(width="auto")
        )
        self.problems = w.HTML()
        self.test_button = w.Button(
            description="Send a test to me", icon="envelope",
            layout=w.Layout(width="auto"),
        )
        self.test_status = w.HTML()

        for widget, name in (
            (self.sender, "sender"),
            (self.to, "recipient-column"),
            (self.subject, "subject"),
            (self.body, "text-template"),
            (self.html, "html-template"),
            (self.attachments, "attachments-column"),
            (self.row, "row-picker"),
            (self.preview, "composer-preview"),
            (self.problems, "problems"),
            (self.test_button, "send-test"),
            (self.test_status, "test-status"),
        ):
            widget.add_class(f"mailkit-{name}")

        editor = w.VBox(
            [
                self.sender,
                self.to,
                self.subject,
                self.body,
                self.html,
                self.attachments,
                w.HTML("<b>Columns</b> (click to insert a field)"),
                self.insert_target,
                w.HBox(self.column_buttons, layout=w.Layout(flex_flow="row wrap")),
                w.HBox([self.check_button, self.test_button]),
                self.test_status,
                self.problems,
            ],
            layout=_COLUMN,
        )
        viewer = w.VBox(
            [
                w.HTML("<b>Preview</b>"),
                self.row,
                self.row_label,
                self.preview,
            ],
            layout=_COLUMN,
        )
        # Side by side on a wide page, so the preview stays in view while typing;
        # one above the other on a narrow one.
        super().__init__(
            [w.HBox([editor, viewer], layout=w.Layout(flex_flow="row wrap"))]
        )
        self.add_class("mailkit-composer")

        for field in (
            self.sender, self.to, self.subject, self.body, self.html, self.attachments
        ):
            field.observe(self._on_edit, names="value")
        self.row.observe(lambda _: self.refresh_preview(), names="value")
        self.check_button.on_click(lambda _: self.check())
        self.test_button.on_click(lambda _: self._start_test())

        self.refresh_preview()
        if len(df) <= AUTO_CHECK_MAX_ROWS:
            self.check()

    # -- the column list ----------------------------------------------------------

    def _column_button(self, name: str) -> w.Button:
        example = self.df[name].iloc[0] if len(self.df) else ""
        button = w.Button(
            description=name,
            tooltip=f"insert {field_expression(name)}; first value: {example!s:.60}",
            layout=w.Layout(width="auto"),
        )
        button.add_class("mailkit-column")
        button.on_click(lambda _: self.insert_column(name))
        return button

    def insert_column(self, name: str, into: str | None = None) -> None:
        """Append the field for column ``name`` to the subject, text or HTML template."""
        if name not in [str(column) for column in self.df.columns]:
            raise KeyError(f"No column {name!r} in the DataFrame.")
        target = getattr(self, into or self.insert_target.value)
        separator = "" if not target.value or target.value.endswith((" ", "\n")) else " "
        target.value = f"{target.value}{separator}{field_expression(name)}"

    # -- options for send_bulk ----------------------------------------------------

    def options(self) -> dict[str, Any]:
        """Return the keyword arguments of ``send_bulk`` that the form sets.

        Raises ConfigurationError when the sender, the recipient column or both
        templates are empty.
        """
        sender = self.sender.value.strip()
        if not sender:
            raise ConfigurationError(
                "The sender is missing: enter it in From, such as "
                "'Name <you@example.com>'."
            )
        if self.to.value is None:
            raise ConfigurationError(
                "The DataFrame has no columns, so there is no recipient column."
            )
        if not self.body.value.strip() and not self.html.value.strip():
            raise ConfigurationError(
                "The message is empty: write a text template, an HTML template or both."
            )
        options: dict[str, Any] = {
            "subject": self.subject.value,
            "body": self.body.value if self.body.value.strip() else None,
            "html": self.html.value if self.html.value.strip() else None,
            "to": self.to.value,
            "sender": sender,
        }
        if self.attachments.value != _NO_COLUMN:
            options["attachments"] = self.attachments.value
        return options

    # -- preview and checks -------------------------------------------------------

    def _on_edit(self, change: dict) -> None:
        self.refresh_preview()
        if len(self.df) <= AUTO_CHECK_MAX_ROWS:
            self.check()

    def refresh_preview(self) -> None:
        """Render the chosen row as it would be sent, or show why it cannot be."""
        if len(self.df) == 0:
            self.row_label.value = ""
            self.preview.value = info_html("The DataFrame has no rows to preview.")
            return
        position = int(self.row.value)
        label = self.df.index[position]
        recipient = self.df[self.to.value].iloc[position] if self.to.value else ""
        self.row_label.value = info_html(
            f"row {position + 1} of {len(self.df)}, index {label!r}, to {recipient}"
        )
        try:
            message = preview(self.df, label, **self.options())
        except ValidationError as exc:
            self.preview.value = error_html(
                "This row cannot be sent as it is:"
            ) + frame_html(exc.problems, index=False)
            return
        except (MailkitError, ValueError, KeyError) as exc:
            self.preview.value = error_html(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the form, never raised
            logger.info("preview of row %r failed: %s", label, exc)
            self.preview.value = error_html(
                f"The preview failed: {type(exc).__name__}: {exc}"
            )
            return
        self.preview.value = (
            _PREVIEW_STYLE + message._repr_html_() + wire_bytes_html(message.data)
        )

    def check(self) -> pd.DataFrame | None:
        """Check every row as send_bulk would and show the problems table.

        Returns the problems DataFrame, or None when the form itself is incomplete.
        """
        try:
            problems = validate(self.df, **self.options())
        except (MailkitError, ValueError) as exc:
            self.problems.value = warning_html(f"Not checked: {exc}")
            return None
        if len(problems) == 0:
            self.problems.value = success_html(
                f"No problems found in {len(self.df)} row(s)."
            )
        else:
            rows = problems["row"].nunique(dropna=False)
            self.problems.value = error_html(
                f"{len(problems)} problem(s) in {rows} row(s); nothing will be sent "
                "until they are fixed."
            ) + frame_html(problems, index=False)
        return problems

    # -- sending a test -----------------------------------------------------------

    def _start_test(self) -> None:
        if not self._test_task.start(self.send_test):
            self.test_status.value = info_html("A test message is already being sent.")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a test send started by the button; True when none runs."""
        return self._test_task.join(timeout)

    def send_test(self, position: int | None = None) -> pd.DataFrame | None:
        """Send the row at ``position`` (default: the previewed row) to the sender.

        The recipient column of that row is replaced with the sender's address,
        so the message is the row's message with the sender as its only
        recipient. Says in the form what happened and returns the one-row
        results, or None when nothing could be sent.
        """
        self.test_button.disabled = True
        try:
            return self._send_test(position)
        finally:
            self.test_button.disabled = False

    def _send_test(self, position: int | None) -> pd.DataFrame | None:
        if self.settings is None:
            self.test_status.value = error_html(
                "No SMTP settings: build the Composer with settings=SMTPSettings(...)."
            )
            return None
        if len(self.df) == 0:
            self.test_status.value = error_html("The DataFrame has no rows.")
            return None
        position = int(self.row.value) if position is None else position
        try:
            options = self.options()
            config = self.settings.config()
            address = parse_mailbox(options["sender"]).addr_spec
        except (MailkitError, ValueError) as exc:
            self.test_status.value = error_html(str(exc))
            return None
        frame = self.df.iloc[[position]].copy()
        frame[options["to"]] = address
        self.test_status.value = info_html(
            f"Sending row {position + 1} to {address} through {config.host}:"
            f"{config.port} ..."
        )
        try:
            results = send_bulk(
                frame, **options, smtp=config, mode="fast", progress=False
            )
        except ValidationError as exc:
            self.test_status.value = error_html(
                "The test message was not sent:"
            ) + frame_html(exc.problems, index=False)
            return None
        except MailkitError as exc:
            self.test_status.value = error_html(f"The test message was not sent. {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - shown in the form, never raised
            logger.exception("sending the test message failed")
            self.test_status.value = error_html(
                f"The test message was not sent: {type(exc).__name__}: {exc}"
            )
            return None
        outcome = results.iloc[0]
        if outcome["status"] == "sent":
            self.test_status.value = success_html(
                f"Test message for row {position + 1} sent to {address} "
                f"({outcome['smtp_code']} {outcome['smtp_reply']})."
            )
        else:
            self.test_status.value = error_html(
                f"The test message for row {position + 1} was not accepted: "
                f"{outcome['status']}: {outcome['error']}"
            )
        return results
