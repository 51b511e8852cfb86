"""What an SMTP server offers after EHLO, as far as composing a message cares."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

__all__ = ["ServerCapabilities"]


@dataclass(frozen=True)
class ServerCapabilities:
    """The EHLO extensions that change how a message is built.

    ``smtputf8`` is True when the server offers SMTPUTF8 (RFC 6531).
    ``size_limit`` is the largest message in octets that the server accepts
    (RFC 1870 SIZE), or None when it gives no limit: no SIZE keyword, ``SIZE``
    without a number, and ``SIZE 0`` all mean no announced limit.
    """

    smtputf8: bool = False
    size_limit: int | None = None

    @classmethod
    def from_ehlo(cls, smtp: smtplib.SMTP) -> ServerCapabilities:
        """Read the capabilities from a connection that has said EHLO."""
        size_text = (smtp.esmtp_features.get("size") or "").strip()
        size_limit = int(size_text) if size_text.isdigit() else 0
        return cls(
            smtputf8=smtp.has_extn("smtputf8"),
            size_limit=size_limit or None,
        )
