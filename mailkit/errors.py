"""Exceptions raised by mailkit.

Every exception mailkit raises derives from :class:`MailkitError`::

    MailkitError
    ├── ConfigurationError (also ValueError)    settings are missing or conflict
    ├── ValidationError (also ValueError)       preflight found bad rows; .problems
    ├── TemplateError (also ValueError)         a template does not parse
    ├── MessageError (also ValueError)          one row's message cannot be built
    ├── SMTPError                               a reply or failure from the server
    │   ├── AuthenticationError                 the server rejected the credentials
    │   ├── SMTPConnectError (also ConnectionError)
    │   │   └── SMTPSessionRefusedError         421/454 or a refused TCP connection
    │   └── SMTPTimeoutError (also TimeoutError)
    ├── JournalError                            a journal file cannot be used
    │   └── JournalLockedError                  another batch uses the journal
    └── BatchStopped                            a run stopped early; .results

Failures of single rows are not raised: they are rows of the results DataFrame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AuthenticationError",
    "BatchStopped",
    "ConfigurationError",
    "JournalError",
    "JournalLockedError",
    "MailkitError",
    "MessageError",
    "SMTPConnectError",
    "SMTPError",
    "SMTPSessionRefusedError",
    "SMTPTimeoutError",
    "TemplateError",
    "ValidationError",
]


class MailkitError(Exception):
    """Base class of every exception raised by mailkit."""


class ConfigurationError(MailkitError, ValueError):
    """The SMTP settings or the options of a call are missing or conflict."""


class TemplateError(MailkitError, ValueError):
    """A subject, body or header template has a syntax error."""


class MessageError(MailkitError, ValueError):
    """One row's message cannot be built or sent to this server.

    The engine records it as that row's failure; other rows go on.
    """


class ValidationError(MailkitError, ValueError):
    """Preflight found problems in the input; nothing was sent.

    ``problems`` is a DataFrame with the columns ``row`` (the index label of the
    input row), ``column``, ``problem`` and ``value``.
    """

    max_listed = 5

    def __init__(self, problems: pd.DataFrame, *, what: str = "input") -> None:
        self.problems = problems
        super().__init__(self._describe(problems, what))

    @classmethod
    def _describe(cls, problems: pd.DataFrame, what: str) -> str:
        count = len(problems)
        rows = problems["row"].nunique() if count else 0
        lines = [
            f"{count} problem(s) in {rows} row(s) of the {what}; nothing was sent."
        ]
        for record in problems.head(cls.max_listed).itertuples(index=False):
            where = "every row" if record.row is None else f"row {record.row!r}"
            value = "" if record.value is None else f" (value: {record.value!r})"
            lines.append(f"  {where}, column {record.column!r}: {record.problem}{value}")
        if count > cls.max_listed:
            lines.append(f"  ... and {count - cls.max_listed} more.")
        lines.append(
            "Fix the data or the templates, or see the .problems DataFrame"
            " for the full list."
        )
        return "\n".join(lines)


class SMTPError(MailkitError):
    """The SMTP server replied with an error, or the session failed.

    ``code`` and ``reply`` are the server's reply code and text, when there was a
    reply.
    """

    def __init__(self, message: str, *, code: int | None = None, reply: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply


class AuthenticationError(SMTPError):
    """The server rejected the login; the run stopped before any message."""


class SMTPConnectError(SMTPError, ConnectionError):
    """The connection to the server could not be opened or was lost."""


class SMTPSessionRefusedError(SMTPConnectError):
    """The server refused a new session for now, and may accept one later.

    Raised for a 421 or 454 reply to the greeting, EHLO, STARTTLS or AUTH (too
    many connections, too many logins) and for a refused TCP connection. The
    engine answers it with fewer connections and a pause.
    """


class SMTPTimeoutError(SMTPError, TimeoutError):
    """The server did not answer within the timeout."""


class JournalError(MailkitError):
    """A journal file is not a mailkit journal, does not fit this run, or failed."""


class JournalLockedError(JournalError):
    """Another batch, in this or another process, is using the journal; nothing
    was sent."""


class BatchStopped(MailkitError):
    """A run stopped before every row was tried.

    ``results`` is the results DataFrame of the whole input: rows that were not
    tried have status ``skipped`` and say why in ``error``.
    """

    def __init__(self, message: str, results: pd.DataFrame) -> None:
        super().__init__(message)
        self.results = results
