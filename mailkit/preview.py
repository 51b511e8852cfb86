"""One row's message as it would be sent, for reading in a notebook or a test."""

from __future__ import annotations

import base64
import html
import re
from email.message import EmailMessage, Message
from typing import Hashable

from .compose import Outgoing

__all__ = ["Preview"]

_CID_REFERENCE = re.compile(r"""(["'(])cid:([^"')\s]+)""")


def _lf(text: str) -> str:
    # Encoded text parts hold CRLF line breaks, the MIME canonical form.
    return text.replace("\r\n", "\n")


def _tree_lines(part: Message, depth: int = 0) -> list[str]:
    label = part.get_content_type()
    details = []
    filename = part.get_filename()
    if filename:
        details.append(f"filename={filename!r}")
    content_id = part.get("Content-ID")
    if content_id:
        details.append(f"Content-ID={content_id}")
    encoding = part.get("Content-Transfer-Encoding")
    if encoding:
        details.append(str(encoding))
    line = "  " * depth + label + (f" ({', '.join(details)})" if details else "")
    lines = [line]
    if part.is_multipart():
        for child in (
            part.iter_parts() if isinstance(part, EmailMessage) else part.get_payload()
        ):
            lines += _tree_lines(child, depth + 1)
    return lines


class Preview:
    """The message of one row exactly as :func:`mailkit.send_bulk` would send it.

    ``data`` is the byte string sent after DATA (CRLF line endings);
    ``envelope_from`` and ``recipients`` are the MAIL FROM and RCPT TO addresses,
    which include Bcc recipients that the bytes never show. In a notebook the
    preview shows the headers, the text part, the HTML part in a sandboxed
    frame and the attachments with their sizes.
    """

    def __init__(self, label: Hashable, outgoing: Outgoing) -> None:
        self.label = label
        self.outgoing = outgoing

    # -- what was built ----------------------------------------------------------

    @property
    def data(self) -> bytes:
        return self.outgoing.data

    @property
    def message(self) -> EmailMessage:
        """The built message; parse :attr:`data` to get what a receiver parses."""
        assert self.outgoing.message is not None
        return self.outgoing.message

    @property
    def envelope_from(self) -> str:
        return self.outgoing.envelope_from

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.outgoing.recipients

    @property
    def message_id(self) -> str:
        return self.outgoing.message_id

    @property
    def mail_options(self) -> tuple[str, ...]:
        return self.outgoing.mail_options

    @property
    def size(self) -> int:
        return len(self.outgoing.data)

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The top-level header fields as (name, decoded value) pairs, in order."""
        return [(name, str(value)) for name, value in self.message.items()]

    @property
    def tree(self) -> str:
        """The MIME structure, one part per line, indented by nesting level."""
        return "\n".join(_tree_lines(self.message))

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str | None:
        """The text/plain body, decoded, with LF line breaks."""
        part = self.message.get_body(("plain",))
        return None if part is None else _lf(part.get_content())

    @property
    def html(self) -> str | None:
        """The text/html body, decoded, with LF line breaks."""
        part = self.message.get_body(("html",))
        return None if part is None else _lf(part.get_content())

    @property
    def attachments(self) -> list[dict[str, object]]:
        """Each attached or inline file: filename, content_type, size (bytes on
        disk, before base64) and content_id (None for attachments)."""
        return [
            {
                "filename": item.filename,
                "content_type": item.content_type,
                "size": item.size,
                "content_id": item.content_id,
            }
            for item in self.outgoing.attachments
        ]

    # -- display -----------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Preview(row={self.label!r}, to={', '.join(self.recipients)!r}, "
            f"subject={self.subject!r}, {self.size} bytes)"
        )

    def _html_with_inline_images(self) -> str:
        """Return the HTML body with cid: references replaced by data: URLs, so
        the sandboxed frame can show inline images."""
        body = self.html or ""
        images = {}
        for part in self.message.walk():
            content_id = part.get("Content-ID")
            if content_id and not part.is_multipart():
                data = part.get_payload(decode=True) or b""
                encoded = base64.b64encode(data).decode("ascii")
                images[str(content_id).strip("<>")] = (
                    f"data:{part.get_content_type()};base64,{encoded}"
                )

        def replace(match: re.Match[str]) -> str:
            url = images.get(match.group(2))
            return match.group(1) + url if url else match.group(0)

        return _CID_REFERENCE.sub(replace, body)

    def _repr_html_(self) -> str:
        escape = html.escape
        rows = "".join(
            f"<tr><th style='text-align:left;padding:2px 8px'>{escape(name)}</th>"
            f"<td style='text-align:left;padding:2px 8px'>{escape(value)}</td></tr>"
            for name, value in self.headers
            if not name.lower().startswith(("content-", "mime-"))
        )
        envelope = (
            f"<tr><th style='text-align:left;padding:2px 8px'>RCPT TO</th>"
            f"<td style='text-align:left;padding:2px 8px'>"
            f"{escape(', '.join(self.recipients))}</td></tr>"
        )
        parts = [
            "<div class='mailkit-preview'>",
            f"<p><b>Row {escape(repr(self.label))}</b>: {self.size} bytes</p>",
            f"<table>{rows}{envelope}</table>",
        ]
        if self.text is not None:
            parts.append(
                "<details open><summary>Text part</summary>"
                f"<pre style='white-space:pre-wrap'>{escape(self.text)}</pre></details>"
            )
        if self.html is not None:
            # sandbox="" blocks scripts, forms and navigation of the message HTML.
            srcdoc = escape(self._html_with_inline_images(), quote=True)
            parts.append(
                "<details open><summary>HTML part</summary>"
                f'<iframe sandbox="" srcdoc="{srcdoc}" '
                "style='width:100%;height:420px;border:1px solid #ccc'>"
                "</iframe></details>"
            )
        if self.attachments:
            items = "".join(
                f"<li>{escape(str(item['filename']))} "
                f"({escape(str(item['content_type']))}, "
                f"{item['size']} bytes{', inline' if item['content_id'] else ''})</li>"
                for item in self.attachments
            )
            parts.append(f"<p>Attachments:</p><ul>{items}</ul>")
        parts.append(
            f"<details><summary>MIME structure</summary><pre>{escape(self.tree)}</pre>"
            "</details></div>"
        )
        return "".join(parts)
