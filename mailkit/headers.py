"""Header policies: how header values are stored, encoded and folded.

The standard library's folder (Python 3.10 to 3.13) moves a whole unstructured
value to a continuation line when it fits there (``Subject:`` followed by an empty
first line), and it decodes RFC 2047 encoded words that a user typed, so a row
value such as ``=?utf-8?q?x=0ABcc:...?=`` would turn into other text.
Unstructured headers here keep the typed text literally and fold it themselves:
words are joined on the first line as long as they fit, a line is folded only at
whitespace, and a word is sent as an RFC 2047 encoded word when it has non-ASCII
characters (in a message without SMTPUTF8), contains ``=?`` or is too long for one
line. Address, MIME and date headers keep the standard library's classes.
"""

from __future__ import annotations

import email.policy
import re
from email.charset import Charset
from email.errors import HeaderParseError
from email.header import decode_header
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.policy import EmailPolicy
from typing import Any, Iterator

__all__ = [
    "MAX_LINE_LENGTH",
    "SEVEN_BIT_POLICY",
    "UTF8_POLICY",
    "fold_angle_list",
    "fold_unstructured",
    "header_value_problem",
    "policy_for",
]

#: Line length that folding aims for, in octets before CRLF (RFC 5322 section 2.1.1).
MAX_LINE_LENGTH = 78

# An encoded word may be at most 75 characters long (RFC 2047 section 2).
_MAX_ENCODED_WORD = 75
# Below this many free octets, an encoded word starts on a new line instead.
_MIN_ENCODED_WORD = 16
_UTF8 = Charset("utf-8")

_WHITESPACE = re.compile(r"([ \t]+)")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
# Characters that str.splitlines() treats as line boundaries, and the C0 controls
# other than tab: none of them may appear in a header value.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def header_value_problem(value: str) -> str | None:
    """Return why ``value`` cannot be one header line, or None when it can.

    A value is rejected when it contains CR, LF, another line separator or a
    control character, or an RFC 2047 encoded word whose decoded text contains
    one, because a mail client decodes such a word and shows a line break or
    more headers.
    """
    match = _FORBIDDEN.search(value)
    if match is not None:
        char = match.group()
        if char in "\r\n":
            return (
                "the value contains a line break (CR or LF), which would end the header"
            )
        return (
            f"the value contains the control character U+{ord(char):04X}, "
            "which is not allowed in a header"
        )
    for word in _ENCODED_WORD.findall(value):
        try:
            decoded = "".join(
                part.decode(charset or "ascii", "replace")
                if isinstance(part, bytes)
                else part
                for part, charset in decode_header(word)
            )
        except (HeaderParseError, LookupError, ValueError):
            continue
        if _FORBIDDEN.search(decoded):
            return (
                f"the value contains the encoded word {word!r}, which decodes to a "
                "line break or control character"
            )
    return None


def _octets(text: str) -> int:
    return len(text.encode("utf-8"))


def _needs_encoding(word: str, utf8: bool, room: int) -> bool:
    if "=?" in word:
        return True
    if not utf8 and not word.isascii():
        return True
    return _octets(word) > room


def _encoded_words(text: str, first_room: int) -> Iterator[str]:
    """Encode ``text`` as RFC 2047 words; the first fits in ``first_room`` octets."""

    def room_per_word() -> Iterator[int]:
        yield min(first_room, _MAX_ENCODED_WORD)
        while True:
            yield _MAX_ENCODED_WORD

    for word in _UTF8.header_encode_lines(text, room_per_word()):
        if word is not None:
            yield word


def _atoms(value: str, utf8: bool) -> list[tuple[str, str, bool]]:
    """Split ``value`` into (leading whitespace, text, encode) runs.

    Adjacent words that need encoding are merged, with the whitespace between them,
    into one run, because a decoder drops whitespace between two encoded words.
    """
    pieces = _WHITESPACE.split(value)
    room = MAX_LINE_LENGTH - 1
    atoms: list[tuple[str, str, bool]] = []
    space = ""
    for index, piece in enumerate(pieces):
        if index % 2 == 1:
            space = piece
            continue
        if not piece:
            continue
        encode = _needs_encoding(piece, utf8, room)
        if encode and atoms and atoms[-1][2]:
            previous_space, previous_text, _ = atoms[-1]
            atoms[-1] = (previous_space, previous_text + space + piece, True)
        else:
            atoms.append((space or " ", piece, encode))
        space = ""
    return atoms


def fold_unstructured(name: str, value: str, *, utf8: bool = False) -> str:
    """Return ``name: value`` folded to lines of at most 78 octets, without CRLF.

    Continuation lines are joined with ``"\\r\\n"``. ``value`` must already have
    passed :func:`header_value_problem`.
    """
    lines = [f"{name}:"]
    for space, text, encode in _atoms(value.strip(), utf8):
        if not encode:
            if _octets(lines[-1]) + len(space) + _octets(text) <= MAX_LINE_LENGTH:
                lines[-1] += space + text
            else:
                lines.append(space + text)
            continue
        room = MAX_LINE_LENGTH - _octets(lines[-1]) - len(space)
        if room < _MIN_ENCODED_WORD:
            lines.append("")
            room = MAX_LINE_LENGTH - len(space)
        words = list(_encoded_words(text, room))
        lines[-1] += space + words[0]
        for word in words[1:]:
            lines.append(" " + word)
    if len(lines) == 1 and lines[0].endswith(":"):
        lines[0] += " "
    return "\r\n".join(lines)


class LiteralUnstructuredHeader(UnstructuredHeader):
    """An unstructured header whose value is kept exactly as given and folded by
    :func:`fold_unstructured`.

    Only messages built by mailkit use this class; parsing received bytes back
    with ``email.policy.default`` decodes the encoded words as usual.
    """

    @classmethod
    def parse(cls, value: str, kwds: dict) -> None:
        kwds["parse_tree"] = None
        kwds["decoded"] = value

    def fold(self, *, policy: EmailPolicy) -> str:
        folded = fold_unstructured(self.name, str(self), utf8=policy.utf8)
        return folded.replace("\r\n", policy.linesep) + policy.linesep


class UniqueLiteralUnstructuredHeader(LiteralUnstructuredHeader):
    max_count = 1


_LIST_ENTRY = re.compile(r"<[^<>]*>")


def fold_angle_list(name: str, value: str) -> str:
    """Return ``name: <a>, <b>`` folded only between the bracketed entries.

    Used for List-Unsubscribe (RFC 2369): receivers and DKIM verifiers expect
    each URL whole and never as an encoded word, so an entry longer than a line
    stays on one line of its own (under the 998-octet limit).
    """
    entries = _LIST_ENTRY.findall(value)
    lines = [f"{name}:"]
    for index, entry in enumerate(entries):
        text = entry + ("," if index < len(entries) - 1 else "")
        if len(lines[-1]) + 1 + len(text) <= MAX_LINE_LENGTH or lines[-1].endswith(":"):
            lines[-1] += " " + text
        else:
            lines.append(" " + text)
    return "\r\n".join(lines)


class AngleListHeader(UniqueLiteralUnstructuredHeader):
    """A header of bracketed URLs such as List-Unsubscribe, folded between entries."""

    def fold(self, *, policy: EmailPolicy) -> str:
        folded = fold_angle_list(self.name, str(self))
        return folded.replace("\r\n", policy.linesep) + policy.linesep


class _CachingHeaderRegistry(HeaderRegistry):
    """A HeaderRegistry that makes each header class once.

    The standard registry creates a new class with ``type()`` for every header
    it builds, which is about a tenth of the time of composing a message.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._classes: dict[str, type] = {}

    def map_to_type(self, name: str, cls: type) -> None:
        super().map_to_type(name, cls)
        self._classes.clear()

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


def _registry() -> HeaderRegistry:
    registry = _CachingHeaderRegistry(default_class=LiteralUnstructuredHeader)
    registry.map_to_type("subject", UniqueLiteralUnstructuredHeader)
    registry.map_to_type("list-unsubscribe", AngleListHeader)
    registry.map_to_type("list-unsubscribe-post", UniqueLiteralUnstructuredHeader)
    return registry


#: The policy every message is built with: CRLF line endings, lines of at most 78
#: octets where the syntax allows, bodies encoded as 7bit, quoted-printable or
#: base64, and 7-bit headers.
SEVEN_BIT_POLICY = email.policy.SMTP.clone(
    cte_type="7bit", max_line_length=MAX_LINE_LENGTH, header_factory=_registry()
)

#: The same for messages sent with SMTPUTF8 (RFC 6531 and 6532): headers may carry
#: UTF-8 as it is, and bodies stay 7-bit encoded.
UTF8_POLICY = SEVEN_BIT_POLICY.clone(utf8=True)


def policy_for(smtputf8: bool) -> EmailPolicy:
    """Return the build policy for a message with or without SMTPUTF8."""
    return UTF8_POLICY if smtputf8 else SEVEN_BIT_POLICY
