"""Rows that are not sent: skipped by preflight options, and dry runs."""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .compose import MessagePlan
from .errors import MessageError
from .results import RowResult, build_results
from .transport import FAILED, SKIPPED

__all__ = ["DRY_RUN_NOTE", "dry_run", "merge_skipped"]

#: The error text of a row that a dry run built and checked.
DRY_RUN_NOTE = "Dry run: the message was built and checked, and not sent."


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    columns = {str(name): df[name].tolist() for name in df.columns}
    return [
        {name: values[position] for name, values in columns.items()}
        for position in range(len(df))
    ]


def _skipped_result(
    plan: MessagePlan, label: Any, row: Mapping[str, Any], reason: str
) -> RowResult:
    return RowResult(
        label=label,
        to=plan.recipient_text(plan.prepare_row(row)),
        status=SKIPPED,
        error=f"Not sent: {reason}.",
    )


def dry_run(
    df: pd.DataFrame, plan: MessagePlan, skipped: Mapping[int, str], mode: str
) -> pd.DataFrame:
    """Build and check every row's message without connecting to any server.

    Rows that build have status "skipped", their Message-ID and the note
    :data:`DRY_RUN_NOTE` in ``error``; rows that cannot be built have status
    "failed" and the reason; rows that preflight options skip say why.
    ``results.attrs["dry_run"]`` is True.
    """
    started = time.monotonic()
    results = []
    for position, (label, row) in enumerate(zip(df.index, _rows(df))):
        if position in skipped:
            results.append(_skipped_result(plan, label, row, skipped[position]))
            continue
        result = RowResult(
            label=label, to=plan.recipient_text(plan.prepare_row(row)), status=FAILED
        )
        try:
            outgoing = plan.compose(label, row)
        except MessageError as exc:
            result.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - any template or data error
            result.error = (
                f"The message could not be built: {type(exc).__name__}: {exc}"
            )
        else:
            result.status = SKIPPED
            result.to = ", ".join(outgoing.recipients)
            result.message_id = outgoing.message_id
            result.attachments = outgoing.attachment_summary
            result.error = DRY_RUN_NOTE
        results.append(result)
    return build_results(
        df.index,
        results,
        attrs={
            "mode": mode,
            "dry_run": True,
            "server": None,
            "elapsed_s": time.monotonic() - started,
        },
    )


def merge_skipped(
    df: pd.DataFrame,
    plan: MessagePlan,
    skipped: Mapping[int, str],
    sent: pd.DataFrame,
) -> pd.DataFrame:
    """Combine the results of the rows sent with those that preflight skipped,
    in the order and with the index of ``df``."""
    if not skipped:
        return sent
    positions = sorted(skipped)
    rows = _rows(df.iloc[positions])
    skipped_results = build_results(
        df.index[positions],
        [
            _skipped_result(plan, df.index[position], row, skipped[position])
            for position, row in zip(positions, rows)
        ],
    )
    sent_positions = np.setdiff1d(np.arange(len(df)), positions)
    order = np.argsort(np.concatenate([sent_positions, positions]), kind="stable")
    pieces = [frame for frame in (sent, skipped_results) if len(frame)]
    merged = pd.concat(pieces).iloc[order] if len(pieces) > 1 else pieces[0]
    merged["status"] = pd.Categorical(
        merged["status"].astype(str), categories=sent["status"].cat.categories
    )
    merged.attrs = dict(sent.attrs)
    merged.attrs["skipped"] = len(positions)
    return merged
