"""Jinja2 templates for subject, bodies and headers, rendered one row at a time."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

import jinja2
import jinja2.meta
import pandas as pd

from .errors import TemplateError

__all__ = ["Template", "TemplateSource", "cell_is_empty", "load_template"]

TemplateSource = Union[str, os.PathLike]


def cell_is_empty(value: Any) -> bool:
    """True for None, NaN, NaT and pandas.NA: the values pandas uses for blank cells."""
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def format_cell(value: Any) -> Any:
    """Turn a cell into what a template prints.

    A blank cell prints as nothing rather than "nan" or "None". A float with no
    fraction prints as an integer, because a column of integers becomes float in
    pandas as soon as one cell is blank. A timestamp at midnight prints as a date.
    """
    if cell_is_empty(value):
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return value.date()
    return value


def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=True,
        finalize=format_cell,
    )


_TEXT_ENV = _environment(autoescape=False)
_HTML_ENV = _environment(autoescape=True)


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


def load_template(name: str, source: TemplateSource, *, html: bool = False) -> Template:
    """Compile ``source``: a template string, or a path to a template file (UTF-8).

    Raises TemplateError for a syntax error or a file that cannot be read.
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
    env = _HTML_ENV if html else _TEXT_ENV
    try:
        parsed = env.parse(text)
        compiled = env.from_string(parsed)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"Syntax error in the {name} template, line {exc.lineno}: {exc.message}."
        ) from exc
    fields = frozenset(jinja2.meta.find_undeclared_variables(parsed))
    return Template(name=name, source=text, fields=fields, compiled=compiled)
