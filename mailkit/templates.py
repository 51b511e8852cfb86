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
import jinja2.nodes
from markupsafe import Markup

from .cells import cell_is_empty, format_cell
from .errors import TemplateError
from .filters import FILTERS
from .tables import html_table, text_table

__all__ = [
    "ROW_VARIABLE",
    "Template",
    "TemplateSource",
    "cell_is_empty",
    "field_reference",
    "format_cell",
    "has_literal_line_break",
    "load_template",
    "read_template_source",
]

TemplateSource = Union[str, os.PathLike]

#: The template variable that contains the whole row, so that
#: ``{{ row["first name"] }}`` reads a column whose name is not an identifier.
ROW_VARIABLE = "row"

# A print tag whose content is words separated by spaces, such as
# {{ first name }}: a column name with spaces that Jinja2 cannot parse.
_SPACED_NAME_TAG = re.compile(r"\{\{-?\s*([^\W\d]\w*(?:[ \t]+\w+)+)\s*-?\}\}")


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
            + _spaced_name_hint(text, exc.lineno)
        ) from exc
    fields = set(jinja2.meta.find_undeclared_variables(parsed))
    if ROW_VARIABLE in fields:
        fields |= _row_item_names(parsed)
    return Template(name=name, source=text, fields=frozenset(fields), compiled=compiled)


def field_reference(name: str) -> str:
    """Return the template text that prints the column ``name``."""
    if name.isidentifier():
        return f"{{{{ {name} }}}}"
    return f"{{{{ {ROW_VARIABLE}[{_quoted(name)}] }}}}"


def _quoted(name: str) -> str:
    quote = "'" if '"' in name and "'" not in name else '"'
    return quote + name.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def _spaced_name_hint(text: str, lineno: int | None) -> str:
    """Return a hint for a print tag such as ``{{ first name }}`` on the line of a
    syntax error, or "" when that line has none."""
    lines = text.splitlines()
    if lineno is None or not 1 <= lineno <= len(lines):
        return ""
    match = _SPACED_NAME_TAG.search(lines[lineno - 1])
    if match is None:
        return ""
    field = " ".join(match.group(1).split())
    return (
        f" Jinja2 reads {match.group(0)} as separate names. If {field!r} is a "
        f"column, write {field_reference(field)} instead."
    )


def _row_item_names(parsed: jinja2.nodes.Template) -> set[str]:
    """Return the columns read as ``row["name"]``, so that preflight checks them
    as it checks ``{{ name }}``."""
    names = set()
    for node in parsed.find_all(jinja2.nodes.Getitem):
        if (
            isinstance(node.node, jinja2.nodes.Name)
            and node.node.name == ROW_VARIABLE
            and isinstance(node.arg, jinja2.nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            names.add(node.arg.value)
    return names


def has_literal_line_break(template: Template) -> bool:
    """True when the template's own text, not a value it prints, contains CR or LF
    after leading and trailing whitespace is stripped, as a header value is."""
    env = _ENVIRONMENTS["text"]
    for _, token_type, value in env.lex(template.source.strip()):
        if token_type == "data" and ("\r" in value or "\n" in value):
            return True
    return False
