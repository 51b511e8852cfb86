"""Run sizes shared by the command line and the notebooks.

The environment variable ``MAILKIT_BENCH_SIZE`` selects ``full`` (the default,
the figures that docs/benchmarks.md records) or ``small`` (seconds instead of
minutes, for the notebook tests in CI). Figures from a small run check that the
benchmarks work; they are too short to compare with the targets.
"""

from __future__ import annotations

import os

__all__ = ["SIZE_ENV", "SIZES", "bench_size"]

SIZE_ENV = "MAILKIT_BENCH_SIZE"
SIZES = ("full", "small")


def bench_size(default: str = "full") -> str:
    """Return the run size from ``MAILKIT_BENCH_SIZE``, or ``default`` when unset."""
    value = os.environ.get(SIZE_ENV, "").strip().lower() or default
    if value not in SIZES:
        raise ValueError(
            f"Invalid {SIZE_ENV}={value!r}: use 'full' or 'small'."
        )
    return value
