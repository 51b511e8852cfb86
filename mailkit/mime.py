"""The MIME structure of a message, built with the standard ``email`` package.

The tree for a message with every kind of part::

    multipart/mixed
    ├── multipart/alternative
    │   ├── text/plain
    │   └── multipart/related
    │       ├── text/html
    │       └── image/png (inline, Content-ID)
    ├── application/pdf (attachment)
    └── text/csv (attachment)

Levels that would hold a single part are left out: a text-only message is one
text/plain part. Sub-parts are :class:`email.message.MIMEPart` objects, so only
the top level carries MIME-Version. Boundaries are derived from the Message-ID,
so building the same row twice with the same Message-ID gives the same bytes.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from typing import Sequence

from .attachments import AttachmentFile

__all__ = ["build_body", "set_body", "set_boundaries"]


def _text_part(text: str, subtype: str, policy: EmailPolicy) -> MIMEPart:
    part = MIMEPart(policy=policy)
    part.set_content(text, subtype=subtype, charset="utf-8")
    return part


def _file_part(
    attachment: AttachmentFile, data: bytes, policy: EmailPolicy
) -> MIMEPart:
    maintype, _, subtype = attachment.content_type.partition("/")
    part = MIMEPart(policy=policy)
    # Bytes are always sent as base64, also for text/* types, so that they
    # arrive unchanged (no line-ending or charset conversion).
    part.set_content(
        data,
        maintype=maintype,
        subtype=subtype,
        cte="base64",
        disposition="inline" if attachment.content_id else "attachment",
        filename=attachment.filename,
        cid=f"<{attachment.content_id}>" if attachment.content_id else None,
    )
    return part


def _multipart(
    subtype: str, parts: Sequence[MIMEPart], policy: EmailPolicy
) -> MIMEPart:
    container = MIMEPart(policy=policy)
    container["Content-Type"] = f"multipart/{subtype}"
    for part in parts:
        container.attach(part)
    return container


def build_body(
    *,
    text: str,
    html: str | None,
    inline: Sequence[tuple[AttachmentFile, bytes]],
    attachments: Sequence[tuple[AttachmentFile, bytes]],
    policy: EmailPolicy,
) -> MIMEPart:
    """Build the body tree; ``inline`` images need ``html``."""
    body = _text_part(text, "plain", policy)
    if html is not None:
        html_part = _text_part(html, "html", policy)
        if inline:
            images = [_file_part(item, data, policy) for item, data in inline]
            html_part = _multipart("related", [html_part, *images], policy)
        body = _multipart("alternative", [body, html_part], policy)
    if attachments:
        files = [_file_part(item, data, policy) for item, data in attachments]
        body = _multipart("mixed", [body, *files], policy)
    return body


def set_body(message: EmailMessage, body: MIMEPart) -> None:
    """Make ``body`` the content of ``message``, below its header fields."""
    message["MIME-Version"] = "1.0"
    for name, value in body.items():
        message[name] = value
    message.set_payload(body.get_payload())


def _leaf_texts(message: MIMEPart) -> list[str]:
    texts = []
    for part in message.walk():
        if not part.is_multipart():
            texts.append(str(part.get_payload()))
    return texts


def set_boundaries(message: EmailMessage, seed: str) -> None:
    """Give every multipart a boundary derived from ``seed`` (the Message-ID).

    A boundary starts with ``=_``, which quoted-printable and base64 never write,
    and it is checked against the text of every 7bit part as well.
    """
    texts = _leaf_texts(message)
    multiparts = [part for part in message.walk() if part.is_multipart()]
    for position, part in enumerate(multiparts):
        for attempt in range(100):
            digest = hashlib.sha256(
                f"{seed}\0{position}\0{attempt}".encode()
            ).hexdigest()
            boundary = f"=_mailkit_{digest[:32]}"
            if not any(boundary in text for text in texts):
                break
        part.set_boundary(boundary)
