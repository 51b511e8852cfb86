"""Files attached to a row's message: paths, content types and sizes."""

from __future__ import annotations

import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .cells import cell_is_blank

__all__ = [
    "AttachmentFile",
    "base64_size",
    "check_content_type",
    "guess_content_type",
    "split_paths",
]

# A MimeTypes object made here holds only Python's built-in table, so the guess
# does not depend on /etc/mime.types of the machine (where, for example, .xyz can
# map to chemical/x-xyz).
_BUILTIN_TYPES = mimetypes.MimeTypes()
# Types that Python's table gains only in later releases (3.13 added most
# Office formats), added so that every supported Python guesses the same.
for _extension, _type in {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    ),
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".md": "text/markdown",
    ".webp": "image/webp",
}.items():
    _BUILTIN_TYPES.add_type(_type, _extension)
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*")
_PATH_SEPARATORS = re.compile(r"[;\n]")

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def split_paths(cell: Any) -> list[str]:
    """Split a cell into file paths: a list, or text separated by ``;`` or newlines."""
    if isinstance(cell, os.PathLike):
        return [os.fspath(cell)]
    if isinstance(cell, (list, tuple)):
        paths: list[str] = []
        for item in cell:
            paths += split_paths(item)
        return paths
    if cell_is_blank(cell):
        return []
    return [part.strip() for part in _PATH_SEPARATORS.split(str(cell)) if part.strip()]


def guess_content_type(
    filename: str, overrides: Mapping[str, str] | None = None
) -> str:
    """Guess the content type from the extension, ignoring case.

    ``overrides`` maps extensions (``".xyz"``) or whole file names to types and
    wins over the guess. Unknown extensions give application/octet-stream.
    """
    if overrides:
        lowered = {key.lower(): value for key, value in overrides.items()}
        name = filename.lower()
        if name in lowered:
            return lowered[name]
        extension = os.path.splitext(name)[1]
        if extension in lowered:
            return lowered[extension]
    guessed, encoding = _BUILTIN_TYPES.guess_type(filename.lower(), strict=False)
    if guessed is None or encoding is not None:
        # A .gz or .bz2 file is sent as it is, so its content type is the
        # compressed form's, which the table does not give.
        return _compressed_type(encoding) if encoding else DEFAULT_CONTENT_TYPE
    return guessed


def _compressed_type(encoding: str) -> str:
    return {
        "gzip": "application/gzip",
        "bzip2": "application/x-bzip2",
        "xz": "application/x-xz",
        "compress": "application/x-compress",
        "br": "application/x-brotli",
    }.get(encoding, DEFAULT_CONTENT_TYPE)


def check_content_type(value: str) -> str | None:
    """Return why ``value`` is not a ``type/subtype`` content type, or None."""
    if not _CONTENT_TYPE.fullmatch(value.strip()):
        return f"{value!r} is not a content type such as application/pdf"
    if value.strip().lower().startswith("multipart/"):
        return f"{value!r} is a multipart type, which a file cannot have"
    return None


def base64_size(size: int) -> int:
    """Octets that ``size`` octets take in base64 with a CRLF after every 76."""
    encoded = 4 * ((size + 2) // 3)
    return encoded + 2 * ((encoded + 75) // 76)


@dataclass(frozen=True)
class AttachmentFile:
    """One file as attached to a message.

    ``size`` is the file size in octets, before base64. ``content_id`` is set for
    inline images, which the HTML body shows with ``src="cid:<content_id>"``.
    """

    path: Path
    filename: str
    content_type: str
    size: int
    content_id: str | None = None

    def describe(self) -> str:
        return f"{self.filename} ({self.content_type}, {self.size} bytes)"

    def read(self) -> bytes:
        return self.path.read_bytes()
