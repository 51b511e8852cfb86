"""Parsing and checking of the addresses found in DataFrame cells.

A cell may hold several mailboxes separated by ``,`` or ``;``, each a bare
addr-spec (``ann@example.com``) or a display name and an addr-spec
(``"Doe, Ann" <ann@example.com>``). Separators inside double quotes or angle
brackets do not split.
"""

from __future__ import annotations

import re
import unicodedata
from email.headerregistry import Address
from typing import Any, Iterable

import idna

__all__ = [
    "ascii_domain",
    "check_addr_spec",
    "needs_smtputf8",
    "parse_mailbox",
    "parse_mailboxes",
    "split_addresses",
    "unique_addr_specs",
]

_SIMPLE_ADDR_SPEC = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
#: The same pattern as a string, for vectorised matching with pandas.
SIMPLE_ADDR_SPEC_PATTERN = _SIMPLE_ADDR_SPEC.pattern

_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f]")
_QUOTED_LOCAL = re.compile(r'"(?:[^"\\\r\n]|\\.)*"')
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ANGLE = re.compile(r"(?s)(.*?)<([^<>]*)>\s*")


def split_addresses(cell: Any) -> list[str]:
    """Split a cell into trimmed mailbox texts, dropping empty items.

    ``" a@example.com; b@example.com, "`` gives ``["a@example.com", "b@example.com"]``.
    A list or tuple cell is taken item by item. Commas and semicolons inside
    double quotes or angle brackets do not split.
    """
    if isinstance(cell, (list, tuple)):
        items: list[str] = []
        for item in cell:
            items += split_addresses(item)
        return items
    text = str(cell)
    items = []
    current: list[str] = []
    quoted = False
    angle = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"' and not angle:
            quoted = not quoted
        elif char == "<" and not quoted:
            angle = True
        elif char == ">" and not quoted:
            angle = False
        elif char in ",;" and not quoted and not angle:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _check_local_part(local_part: str) -> str | None:
    if not local_part:
        return "the address has an empty local part"
    if local_part.startswith('"'):
        if _QUOTED_LOCAL.fullmatch(local_part):
            return None
        return f"the quoted local part {local_part} is not closed or has a bare quote"
    if local_part.startswith(".") or local_part.endswith(".") or ".." in local_part:
        return "the local part starts or ends with a dot, or has two dots in a row"
    for char in local_part.replace(".", ""):
        if not _ATEXT.fullmatch(char):
            return f"the local part contains {char!r}, which needs quoting"
    if len(local_part.encode("utf-8")) > 64:
        return "the local part is longer than 64 octets"
    return None


def ascii_domain(domain: str) -> str:
    """Return ``domain`` with every label in ASCII: IDNA 2008 A-labels (``xn--``).

    Raises ValueError with a plain message when a label is not a valid host name
    label.
    """
    if domain.startswith("[") and domain.endswith("]"):
        return domain
    if domain.isascii():
        ascii_name = domain
    else:
        try:
            ascii_name = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(
                f"the domain {domain!r} is not a valid IDN ({exc})"
            ) from exc
    labels = ascii_name.split(".")
    if len(labels) < 2 or not all(labels):
        raise ValueError("the domain has no dot-separated name such as example.com")
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise ValueError(
                f"the domain label {label!r} is invalid: use letters, digits and "
                "hyphens, not at the start or end"
            )
    if len(ascii_name) > 253:
        raise ValueError("the domain is longer than 253 characters")
    return ascii_name


def _invisible_character(value: str) -> str | None:
    """Return why ``value`` is rejected when it contains a Unicode format
    character (category Cf), such as U+200B ZERO WIDTH SPACE or U+FEFF.

    Such characters show as nothing, and usually come with text copied from web
    pages and documents.
    """
    for position, char in enumerate(value, start=1):
        if unicodedata.category(char) != "Cf":
            continue
        name = unicodedata.name(char, "FORMAT CHARACTER")
        return (
            f"the address contains the invisible character {char!r} "
            f"(U+{ord(char):04X} {name}) at character {position}; delete it or "
            "type the address again"
        )
    return None


def check_addr_spec(value: str) -> str | None:
    """Return why ``value`` is not a deliverable addr-spec, or None when it is one.

    Non-ASCII local parts are accepted here, because whether the server offers
    SMTPUTF8 is known only from its EHLO reply. Non-ASCII domains must be valid IDNs.
    Invisible format characters are rejected anywhere, because IDNA mapping
    would drop some of them silently and a local part would keep them.
    """
    if not value:
        return "the address is empty"
    if _SIMPLE_ADDR_SPEC.fullmatch(value):
        return None
    invisible = _invisible_character(value)
    if invisible:
        return invisible
    if "@" not in value:
        return "the address has no @ and domain"
    local_part, _, domain = value.rpartition("@")
    if not local_part.startswith('"') and any(char.isspace() for char in value):
        return "the address contains whitespace"
    problem = _check_local_part(local_part)
    if problem:
        return problem
    if not domain:
        return "the address has no domain after the @"
    try:
        ascii_domain(domain)
    except ValueError as exc:
        return str(exc)
    return None


def needs_smtputf8(address: Address) -> bool:
    """True when the local part is not ASCII, so only SMTPUTF8 can carry it."""
    return not address.username.isascii()


def _unquote_display_name(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def parse_mailbox(value: str, display_name: str | None = None) -> Address:
    """Parse ``"Name <addr-spec>"`` or a bare addr-spec into an Address.

    ``display_name``, when given and not empty, replaces the name in ``value``.
    Raises ValueError with a plain message when the value is not one mailbox.
    """
    text = value.strip()
    match = _ANGLE.fullmatch(text)
    if match:
        name, addr_spec = _unquote_display_name(match.group(1)), match.group(2).strip()
    else:
        name, addr_spec = "", text
    problem = check_addr_spec(addr_spec)
    if problem:
        raise ValueError(f"{value!r} is not a valid mailbox: {problem}")
    if display_name is not None and display_name.strip():
        name = display_name.strip()
    local_part, _, domain = addr_spec.rpartition("@")
    if local_part.startswith('"'):
        local_part = re.sub(r"\\(.)", r"\1", local_part[1:-1])
    return Address(display_name=name, username=local_part, domain=domain)


def parse_mailboxes(cell: Any, display_name: str | None = None) -> list[Address]:
    """Parse every mailbox in a cell; ``display_name`` applies to a single mailbox.

    Raises ValueError for an invalid mailbox, or when ``display_name`` is given for
    a cell with several mailboxes.
    """
    items = split_addresses(cell)
    if display_name is not None and display_name.strip() and len(items) > 1:
        raise ValueError(
            f"a display name column applies to one address, but the cell contains "
            f"{len(items)}: write each as 'Name <address>' in the cell instead"
        )
    return [parse_mailbox(item, display_name) for item in items]


def unique_addr_specs(addresses: Iterable[str]) -> list[str]:
    """Drop repeated addresses, comparing without case, keeping the first spelling."""
    seen: set[str] = set()
    unique = []
    for address in addresses:
        key = address.lower()
        if key not in seen:
            seen.add(key)
            unique.append(address)
    return unique
