"""Render a message from its wire bytes as HTML for the preview.

The preview parses the exact bytes that go after DATA, so it shows what the
recipient's mail program receives: the decoded headers, the text part, the HTML
part in a sandboxed frame, the attachments and, on request, the bytes
themselves.
"""

from __future__ import annotations

import email
import email.policy
import html
from email.message import EmailMessage

__all__ = ["message_html"]

#: Bytes of the raw message shown under "wire bytes"; longer messages are cut.
MAX_RAW_BYTES = 20_000

_SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID")


def _parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def _headers_html(message: EmailMessage) -> str:
    names = [name for name in _SHOWN_HEADERS if name in message]
    names += [
        name
        for name in dict.fromkeys(message.keys())
        if name not in _SHOWN_HEADERS
        and name.lower() not in ("mime-version", "content-type", "content-transfer-encoding")
    ]
    rows = []
    for name in names:
        for value in message.get_all(name, []):
            rows.append(
                f'<tr><th style="text-align: right; padding-right: 1em">'
                f"{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>"
            )
    return f'<table class="mailkit-headers">{"".join(rows)}</table>'


def _attachments(message: EmailMessage) -> list[tuple[str, str, int]]:
    found = []
    for part in message.iter_attachments() if message.is_multipart() else ():
        payload = part.get_payload(decode=True) or b""
        found.append(
            (part.get_filename() or "(no file name)", part.get_content_type(), len(payload))
        )
    return found


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024 / 1024:.1f} MiB"


def message_html(data: bytes) -> str:
    """Return an HTML view of the message whose wire form is ``data``."""
    message = _parse(data)
    parts = [_headers_html(message)]

    text_part = message.get_body(preferencelist=("plain",))
    if text_part is not None:
        parts.append(
            '<div><b>Text part</b></div><pre class="mailkit-text-part" '
            'style="white-space: pre-wrap; border: 1px solid #ccc; padding: 0.5em">'
            f"{html.escape(text_part.get_content())}</pre>"
        )
    html_part = message.get_body(preferencelist=("html",))
    if html_part is not None:
        # An empty sandbox attribute blocks scripts, forms and navigation in the
        # message's HTML, and keeps its styles out of the notebook page.
        srcdoc = html.escape(html_part.get_content(), quote=True)
        parts.append(
            '<div><b>HTML part</b></div><iframe class="mailkit-html-part" sandbox="" '
            f'srcdoc="{srcdoc}" style="width: 100%; height: 20em; '
            'border: 1px solid #ccc; background: white"></iframe>'
        )
    attachments = _attachments(message)
    if attachments:
        items = "".join(
            f"<li>{html.escape(name)} ({html.escape(kind)}, {_size(size)})</li>"
            for name, kind, size in attachments
        )
        parts.append(f'<div><b>Attachments</b></div><ul class="mailkit-attachments">{items}</ul>')

    raw = data[:MAX_RAW_BYTES].decode("ascii", "replace")
    cut = ""
    if len(data) > MAX_RAW_BYTES:
        cut = f"\n... {len(data) - MAX_RAW_BYTES} more bytes"
    parts.append(
        f"<details><summary>Wire bytes ({len(data)} bytes, as sent after DATA)"
        f'</summary><pre class="mailkit-wire" style="white-space: pre-wrap">'
        f"{html.escape(raw + cut)}</pre></details>"
    )
    return '<div class="mailkit-message">' + "".join(parts) + "</div>"
