"""mailkit: send one personalised email per pandas DataFrame row.

    results = df.pipe(mailkit.send_bulk, subject="Hi {{ first_name }}",
                      body=Path("body.txt"), sender="me@example.com", mode="instant")

``results`` has the same index as ``df`` and says what happened to every row.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import state
from .api import preview, send_bulk, validate
from .compat import EmailSender, EmailSendResult
from .compose import Outgoing
from .config import SMTPConfig
from .errors import (
    AuthenticationError,
    BatchStopped,
    ConfigurationError,
    JournalError,
    JournalLockedError,
    MailkitError,
    MessageError,
    SMTPConnectError,
    SMTPError,
    SMTPSessionRefusedError,
    SMTPTimeoutError,
    TemplateError,
    ValidationError,
)
from .journal import journal_results
from .preview import Preview
from .readers import read_table
from .results import summary
from .server import CapturedMessage, LocalSMTPServer
from .stop import StopToken
from .tables import html_table, text_table

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BatchStopped",
    "CapturedMessage",
    "ConfigurationError",
    "EmailSendResult",
    "EmailSender",
    "JournalError",
    "JournalLockedError",
    "LocalSMTPServer",
    "MailkitError",
    "MessageError",
    "Outgoing",
    "Preview",
    "SMTPConfig",
    "SMTPConnectError",
    "SMTPError",
    "SMTPSessionRefusedError",
    "SMTPTimeoutError",
    "StopToken",
    "TemplateError",
    "ValidationError",
    "html_table",
    "journal_results",
    "preview",
    "read_table",
    "send_bulk",
    "summary",
    "text_table",
    "validate",
]


def __getattr__(name: str) -> Any:
    # mailkit.last_results: the results of the last send_bulk call, also after an
    # exception or an interrupt; None when that call raised before any row had a
    # status (bad input or settings, or no connection).
    if name == "last_results":
        return state.last_results
    # mailkit.widgets is imported on first use, because ipywidgets is slow to import.
    if name == "widgets":
        return importlib.import_module(".widgets", __name__)
    raise AttributeError(f"module 'mailkit' has no attribute {name!r}")
