"""List-Unsubscribe and List-Unsubscribe-Post headers (RFC 2369 and RFC 8058).

Large mailbox providers expect bulk mail to carry a one-click unsubscribe URL.
The URLs are written whole inside angle brackets, never as encoded words, and
the header is folded only between entries, because a changed URL breaks both
the link and a DKIM signature over the header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from .addresses import ascii_domain, parse_mailbox
from .cells import cell_is_blank
from .errors import ConfigurationError, MessageError
from .sources import ValueSource, value_source

__all__ = ["ANGLE_LIST", "Unsubscribe", "check_unsubscribe_url"]

#: A List-Unsubscribe value: bracketed URLs separated by commas.
ANGLE_LIST = re.compile(r"\s*<[!-;=?-~]+>(?:\s*,\s*<[!-;=?-~]+>)*\s*")
# Printable ASCII without space, quotes and angle brackets (RFC 3986 characters).
_URL_TEXT = re.compile(r"[!#-;=?-~]+")
# Leaves room for the header name on a line of at most 998 octets.
_MAX_URL_LENGTH = 900


def check_unsubscribe_url(url: str) -> str | None:
    """Return why ``url`` cannot be an unsubscribe URL, or None when it can."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        return f"{url!r} is not an http or https URL such as https://example.com/u"
    if not _URL_TEXT.fullmatch(url):
        return (
            f"{url!r} contains spaces, quotes, angle brackets or non-ASCII "
            "characters; percent-encode them"
        )
    if len(url) > _MAX_URL_LENGTH:
        return f"the URL is {len(url)} characters long, over {_MAX_URL_LENGTH}"
    return None


def _is_url(text: str) -> bool:
    return text.startswith(("https://", "http://"))


def _is_address(text: str) -> bool:
    return "@" in text


@dataclass(frozen=True)
class Unsubscribe:
    """The sources of each row's unsubscribe URL and mailto address."""

    url: ValueSource | None
    mailto: ValueSource | None

    @classmethod
    def build(cls, url: Any, mailto: Any) -> Unsubscribe | None:
        """Return the sources, or None when neither option is set."""
        if url is None and mailto is None:
            return None
        if isinstance(url, str) and _is_url(url) and "{" not in url:
            problem = check_unsubscribe_url(url)
            if problem:
                raise ConfigurationError(f"Invalid unsubscribe_url: {problem}.")
        return cls(
            url=(
                value_source("unsubscribe_url", url, fixed_text=_is_url)
                if url is not None
                else None
            ),
            mailto=(
                value_source("unsubscribe_mailto", mailto, fixed_text=_is_address)
                if mailto is not None
                else None
            ),
        )

    @property
    def sources(self) -> list[ValueSource]:
        return [source for source in (self.url, self.mailto) if source is not None]

    def headers(
        self, values: Mapping[str, Any], context: Mapping[str, Any]
    ) -> list[tuple[str, str]]:
        """Return this row's header fields; none when both values are blank.

        Raises MessageError for an invalid URL or address.
        """
        entries = []
        one_click = False
        if self.url is not None:
            url = self.url.value_for(values, context)
            if not cell_is_blank(url):
                url = str(url).strip()
                problem = check_unsubscribe_url(url)
                if problem:
                    raise MessageError(f"Invalid unsubscribe URL: {problem}.")
                entries.append(url)
                one_click = url.startswith("https://")
        if self.mailto is not None:
            address = self.mailto.value_for(values, context)
            if not cell_is_blank(address):
                entries.append("mailto:" + _mailto_address(str(address)))
        if not entries:
            return []
        fields = [("List-Unsubscribe", ", ".join(f"<{entry}>" for entry in entries))]
        if one_click:
            # RFC 8058 one-click unsubscribe needs an https URL in the list.
            fields.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        return fields


def _mailto_address(text: str) -> str:
    try:
        address = parse_mailbox(text)
        domain = ascii_domain(address.domain)
    except ValueError as exc:
        raise MessageError(f"Invalid unsubscribe_mailto address: {exc}.") from exc
    if not address.username.isascii() or not _URL_TEXT.fullmatch(address.username):
        raise MessageError(
            f"The unsubscribe_mailto address {text!r} needs percent-encoding in a "
            "mailto: URL; use an address with a plain ASCII local part."
        )
    return f"{address.username}@{domain}"
