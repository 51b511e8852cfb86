"""Per-row values of options such as ``cc=`` or ``attachments=``.

An option value is read in one of three ways, decided by its form alone so that
the same call means the same thing for every DataFrame:

- a string containing ``{{`` or ``{%`` is a Jinja2 template rendered per row;
- a ``pathlib.Path``, a list or a tuple is a fixed value for every row, and so
  is a string that the option takes as fixed (an address with ``@`` for the
  address options);
- any other string is a column name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .errors import ConfigurationError
from .templates import Template, load_template

__all__ = ["ValueSource", "value_source"]


@dataclass(frozen=True)
class ValueSource:
    """Where one option's per-row value comes from.

    ``kind`` is "column", "template" or "fixed"; ``option`` is the option name,
    used in error messages.
    """

    option: str
    kind: str
    column: str | None = None
    template: Template | None = None
    value: Any = None

    @property
    def fields(self) -> frozenset[str]:
        """Row fields this source reads."""
        if self.kind == "column":
            return frozenset({self.column})  # type: ignore[arg-type]
        if self.kind == "template":
            return self.template.fields  # type: ignore[union-attr]
        return frozenset()

    def value_for(self, row: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        """Return this row's value; ``context`` is what templates see."""
        if self.kind == "column":
            return row[self.column]  # type: ignore[index]
        if self.kind == "template":
            return self.template.render(context)  # type: ignore[union-attr]
        return self.value

    def describe(self) -> str:
        if self.kind == "column":
            return f"the column {self.column!r}"
        if self.kind == "template":
            return f"the {self.option} template"
        return f"the fixed {self.option} value"


def value_source(
    option: str,
    value: Any,
    *,
    fixed_text: Callable[[str], bool] = lambda text: False,
) -> ValueSource:
    """Decide how the option value ``value`` is read per row.

    ``fixed_text`` tells whether a plain string is a fixed value rather than a
    column name.
    """
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return ValueSource(option, "template", template=load_template(option, value))
    if isinstance(value, (os.PathLike, list, tuple)):
        return ValueSource(option, "fixed", value=value)
    if isinstance(value, str):
        if fixed_text(value):
            return ValueSource(option, "fixed", value=value)
        return ValueSource(option, "column", column=value)
    raise ConfigurationError(
        f"Invalid {option}= of type {type(value).__name__}: pass a column name, a "
        "template string or a fixed value."
    )
