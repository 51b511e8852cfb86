"""Parsing and checking of the addresses found in DataFrame cells."""

from __future__ import annotations

import re
from email.errors import HeaderParseError, MessageDefect
from email.headerregistry import Address

__all__ = ["check_addr_spec", "parse_mailbox", "split_addresses"]

_SEPARATORS = re.compile(r"[,;]")


def split_addresses(cell: str) -> list[str]:
    """Split a cell on ``,`` or ``;`` into trimmed addr-specs, dropping empty items.

    ``" a@example.com; b@example.com, "`` gives ``["a@example.com", "b@example.com"]``.
    """
    return [item.strip() for item in _SEPARATORS.split(cell) if item.strip()]


def check_addr_spec(value: str) -> str | None:
    """Return why ``value`` is not a deliverable addr-spec, or None when it is one."""
    if not value:
        return "the address is empty"
    if any(char.isspace() for char in value):
        return "the address contains whitespace"
    if "@" not in value:
        return "the address has no @ and domain"
    try:
        address = Address(addr_spec=value)
    except (ValueError, HeaderParseError, MessageDefect) as exc:
        return f"invalid address syntax ({exc})"
    if not address.username:
        return "the address has an empty local part"
    domain = address.domain
    if "." not in domain or domain.startswith(".") or domain.endswith("."):
        return "the domain has no dot-separated name such as example.com"
    return None


def parse_mailbox(value: str) -> Address:
    """Parse ``"Name <addr-spec>"`` or a bare addr-spec into an Address.

    Raises ValueError with a plain message when the value is not one mailbox.
    """
    text = value.strip()
    match = re.fullmatch(r"(?s)(.*?)<([^<>]*)>", text)
    display_name, addr_spec = (match.group(1), match.group(2)) if match else ("", text)
    display_name = display_name.strip().strip('"').strip()
    addr_spec = addr_spec.strip()
    problem = check_addr_spec(addr_spec)
    if problem:
        raise ValueError(f"{value!r} is not a valid mailbox: {problem}")
    local_part, _, domain = addr_spec.rpartition("@")
    return Address(display_name=display_name, username=local_part, domain=domain)
