"""Message bodies: Markdown to HTML, and the text part derived from an HTML body."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import markdown as markdown_lib

__all__ = ["html_document", "html_to_text", "markdown_to_html"]

# Python-Markdown extensions: "extra" adds tables, fenced code, footnotes and
# attribute lists; "sane_lists" keeps numbered and bulleted lists apart.
_MARKDOWN_EXTENSIONS = ["extra", "sane_lists"]


def markdown_to_html(text: str) -> str:
    """Convert Markdown to an HTML fragment with Python-Markdown."""
    return markdown_lib.markdown(text, extensions=_MARKDOWN_EXTENSIONS)


def html_document(fragment: str) -> str:
    """Wrap an HTML fragment in a minimal UTF-8 document for a mail body."""
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n</head>\n'
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:15px;'
        f'line-height:1.4">\n{fragment}\n</body>\n</html>\n'
    )


_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "div",
        "dl",
        "dt",
        "dd",
        "fieldset",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tr",
        "ul",
    }
)
_SKIPPED_TAGS = frozenset({"head", "script", "style", "template", "title"})


class _TextExtractor(HTMLParser):
    """Collects readable text: blocks on their own lines, links as ``text (url)``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0
        self._pre_depth = 0
        self._links: list[str] = []
        self._list_stack: list[list[int]] = []
        self._cells_in_row = 0

    def _newline(self, count: int = 1) -> None:
        self.parts.append("\n" * count)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag == "br":
            self._newline()
        elif tag in ("ul", "ol"):
            self._list_stack.append([0 if tag == "ol" else -1])
            self._newline()
        elif tag == "li":
            self._newline()
            marker = "- "
            if self._list_stack and self._list_stack[-1][0] >= 0:
                self._list_stack[-1][0] += 1
                marker = f"{self._list_stack[-1][0]}. "
            self.parts.append("  " * max(len(self._list_stack) - 1, 0) + marker)
        elif tag == "tr":
            self._cells_in_row = 0
            self._newline()
        elif tag in ("td", "th"):
            if self._cells_in_row:
                self.parts.append("  ")
            self._cells_in_row += 1
        elif tag == "a":
            self._links.append(values.get("href", ""))
        elif tag == "img" and values.get("alt"):
            self.parts.append(f"[{values['alt']}]")
        elif tag == "pre":
            self._pre_depth += 1
            self._newline(2)
        elif tag in _BLOCK_TAGS:
            self._newline(2 if tag in ("p", "h1", "h2", "h3", "table") else 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(self._skip_depth - 1, 0)
        elif tag in ("ul", "ol"):
            if self._list_stack:
                self._list_stack.pop()
            self._newline()
        elif tag == "a" and self._links:
            href = self._links.pop()
            text = self.parts[-1].strip() if self.parts else ""
            if href and not href.startswith(("#", "cid:", "mailto:")) and href != text:
                self.parts.append(f" ({href})")
        elif tag == "pre":
            self._pre_depth = max(self._pre_depth - 1, 0)
            self._newline(2)
        elif tag in ("li", "tr", "dt", "dd"):
            return
        elif tag in _BLOCK_TAGS:
            self._newline(2 if tag in ("p", "h1", "h2", "h3", "table") else 1)

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            self.parts.append(data)
            return
        text = re.sub(r"\s+", " ", data)
        at_line_start = not self.parts or self.parts[-1].endswith("\n")
        if text == " " and at_line_start:
            return
        self.parts.append(text)


def html_to_text(html: str) -> str:
    """Derive a plain-text body from HTML: readable text, not a full renderer.

    Paragraphs and headings are separated by blank lines, list items start with
    ``-`` or their number, table cells are separated by two spaces, links are
    written as ``text (url)`` and images as their alt text. The result ends with
    one line break.
    """
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    text = "".join(extractor.parts)
    lines = [
        line.strip(" ") if not line.startswith("  ") else line.rstrip(" ")
        for line in text.split("\n")
    ]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    return text + "\n"
