"""The wire bytes of a previewed message, as a collapsible HTML section.

:class:`mailkit.Preview` renders the headers, parts and attachments; the form
adds the exact bytes that go after DATA, so nothing about the message is hidden.
"""

from __future__ import annotations

import html

__all__ = ["wire_bytes_html"]

#: Bytes of the message shown in the form; longer messages are cut there.
MAX_RAW_BYTES = 20_000


def wire_bytes_html(data: bytes) -> str:
    """Return a ``<details>`` element that shows ``data`` as text."""
    raw = data[:MAX_RAW_BYTES].decode("ascii", "replace")
    cut = ""
    if len(data) > MAX_RAW_BYTES:
        cut = f"\n... {len(data) - MAX_RAW_BYTES} more bytes"
    return (
        f"<details><summary>Wire bytes ({len(data)} bytes, as sent after DATA)"
        f'</summary><pre class="mailkit-wire" style="white-space: pre-wrap">'
        f"{html.escape(raw + cut)}</pre></details>"
    )
