"""Jinja2 templates for subject, bodies and headers, rendered one row at a time."""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

import jinja2
import jinja2.meta
from markupsafe import Markup

from .cells import cell_is_empty, format_cell
from .errors import TemplateError
from .filters import FILTERS
from .tables import html_table, text_table

__all__ = [
    "Template",
    "TemplateSource",
    "cell_is_empty",
    "format_cell",
    "has_literal_line_break",
    "load_template",
    "read_template_source",
]

TemplateSource = Union[str, os.PathLike]


def _escape_markdown_html(value: Any) -> Any:
    """Finalize for the HTML side of a Markdown body: a cell prints as literal text.

    HTML special characters become entities and Markdown syntax characters get a
    backslash, so a value such as ``*Bob*`` or ``<b>`` shows as typed. Values
    marked safe (such as the ``table`` filter's HTML) pass unchanged.
    """
    value = format_cell(value)
    if isinstance(value, Markup):
        return value
    text = html.escape(str(value), quote=False)
    return _MARKDOWN_SPECIAL.sub(r"\\\g<0>", text)


# The characters Python-Markdown accepts a backslash escape for, with "|" from the
# tables extension.
_MARKDOWN_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+\-.!|>]")


def _environment(kind: str) -> jinja2.Environment:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=kind == "html",
        keep_trailing_newline=True,
        finalize=_escape_markdown_html if kind == "markdown" else format_cell,
    )
    env.filters.update(FILTERS)
    env.filters["table"] = text_table if kind == "text" else html_table
    return env


_ENVIRONMENTS = {kind: _environment(kind) for kind in ("text", "html", "markdown")}


@dataclass(frozen=True)
class Template:
    """One compiled template and the names of the row fields it reads.

    ``name`` says where the template is used ("subject", "body", ...) so that
    errors can point to it.
    """

    name: str
    source: str
    fields: frozenset[str]
    compiled: jinja2.Template

    def render(self, context: Mapping[str, Any]) -> str:
        return self.compiled.render(context)


def read_template_source(name: str, source: TemplateSource) -> str:
    """Return the text of ``source``: a template string, or a path to a UTF-8 file.

    Raises TemplateError for a file that cannot be read or a value of another type.
    """
    if isinstance(source, os.PathLike):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(
                f"Cannot read the {name} template file {str(path)!r}: {exc.strerror}."
            ) from exc
    elif isinstance(source, str):
        text = source
    else:
        raise TemplateError(
            f"Invalid {name} template of type {type(source).__name__}: pass a string "
            "or a pathlib.Path to a template file."
        )
    return text


def load_template(
    name: str, source: TemplateSource, *, html: bool = False, kind: str | None = None
) -> Template:
    """Compile ``source``: a template string, or a path to a template file (UTF-8).

    ``kind`` picks the environment: "text" (no escaping), "html" (autoescape) or
    "markdown" (cells escaped for Markdown and HTML); ``html=True`` means "html".
    Raises TemplateError for a syntax error or a file that cannot be read.
    """
    text = read_template_source(name, source)
    env = _ENVIRONMENTS[kind or ("html" if html else "text")]
    try:
        parsed = env.parse(text)
        compiled = env.from_string(parsed)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"Syntax error in the {name} template, line {exc.lineno}: {exc.message}."
        ) from exc
    fields = frozenset(jinja2.meta.find_undeclared_variables(parsed))
    return Template(name=name, source=text, fields=fields, compiled=compiled)


def has_literal_line_break(template: Template) -> bool:
    """True when the template's own text, not a value it prints, contains CR or LF
    after leading and trailing whitespace is stripped, as a header value is."""
    env = _ENVIRONMENTS["text"]
    for _, token_type, value in env.lex(template.source.strip()):
        if token_type == "data" and ("\r" in value or "\n" in value):
            return True
    return False
