"""Close-match suggestions for names that are not columns."""

from __future__ import annotations

import difflib

__all__ = ["close_names"]


def close_names(name: str, columns: list[str]) -> str:
    """Return "; did you mean ...?" with the columns close to ``name``, or the
    first columns when none is close, for the end of an error message."""

    def squash(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    by_squashed = {squash(column): column for column in columns}
    close = [by_squashed[squash(name)]] if squash(name) in by_squashed else []
    close += difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
    close = list(dict.fromkeys(close))
    if not close:
        return f"; the columns are {', '.join(columns[:12])}"
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
