"""Targets that a benchmark run is checked against, and how a result is reported."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["TargetCheck", "at_least", "at_most", "targets_frame"]


@dataclass(frozen=True)
class TargetCheck:
    """One target with the figure measured in the same run.

    ``measured`` and ``required`` are ratios. ``verdict`` says whether the target
    was met and, when it was missed, by how much.
    """

    target: str
    measured: float
    required: float
    higher_is_better: bool

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.measured >= self.required
        return self.measured <= self.required

    @property
    def verdict(self) -> str:
        if self.met:
            return "met"
        if self.higher_is_better:
            gap = (self.required - self.measured) / self.required
            return f"missed: {gap:.0%} below the target"
        gap = (self.measured - self.required) / self.required
        return f"missed: {gap:.0%} above the target"

    def as_record(self) -> dict[str, object]:
        sign = ">=" if self.higher_is_better else "<="
        return {
            "target": self.target,
            "required": f"{sign} {self.required:.2f}",
            "measured": round(self.measured, 3),
            "verdict": self.verdict,
        }


def at_least(target: str, measured: float, required: float) -> TargetCheck:
    return TargetCheck(target, measured, required, higher_is_better=True)


def at_most(target: str, measured: float, required: float) -> TargetCheck:
    return TargetCheck(target, measured, required, higher_is_better=False)


def targets_frame(checks: list[TargetCheck]) -> pd.DataFrame:
    """Return the checks as a table with the columns target, required, measured, verdict."""
    return pd.DataFrame(
        [check.as_record() for check in checks],
        columns=["target", "required", "measured", "verdict"],
    )
