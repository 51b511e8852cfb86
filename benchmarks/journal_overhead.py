"""Throughput cost of the journal: a pooled send with and without ``journal=``.

    python -m benchmarks.journal_overhead [--rows 2000] [--repeats 3]
        [--workers 10] [--sink postfix|aiosmtpd]

Sends the end-to-end workload (:func:`~benchmarks.workload.recipients_frame` with
:data:`~benchmarks.workload.TEMPLATES`) to a loopback sink in instant mode, in
pairs of runs without and with a journal (a new journal file each time, in the
system's temporary folder), so that both runs of a pair share the same noise.
It prints messages per second and the process's CPU time per message for each
run, and the median over the pairs of the throughput ratio (journal / no
journal). The target is a ratio of at least 0.85: the journal may cost less than
15% of the throughput. On a machine busy with other work the ratio of a single
pair varies a lot; use more ``--repeats`` there.

Postfix's ``smtp-sink`` is the default sink because an aiosmtpd server caps any
client near 2,000 messages per second; ``--sink aiosmtpd`` works without Postfix.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import mailkit

from .machine import describe_machine
from .sinks import AiosmtpdSink, PostfixSink, postfix_tools
from .workload import TEMPLATES, recipients_frame

__all__ = ["main", "measure"]

#: The smallest ratio (journal / no journal) that meets the target.
TARGET_RATIO = 0.85


@dataclass(frozen=True)
class Run:
    """One timed send: throughput and the process's CPU time per message."""

    messages_per_second: float
    cpu_ms_per_message: float


def _send(df, url: str, workers: int, journal: Path | None) -> Run:
    cpu_started = time.process_time()
    started = time.perf_counter()
    results = mailkit.send_bulk(
        df,
        smtp=url,
        mode="instant",
        max_workers=workers,
        progress=False,
        journal=journal,
        key="order_id" if journal is not None else None,
        **TEMPLATES,
    )
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    sent = int((results["status"] == "sent").sum())
    if sent != len(df):
        raise RuntimeError(f"only {sent} of {len(df)} rows were sent")
    return Run(len(df) / elapsed, cpu * 1000 / len(df))


def measure(
    url: str, *, rows: int, repeats: int, workers: int
) -> tuple[list[Run], list[Run]]:
    """Return the runs without and with a journal, in pairs."""
    df = recipients_frame(rows)
    plain: list[Run] = []
    journalled: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="mailkit-journal-bench-") as folder:
        _send(df.head(min(rows, 200)), url, workers, None)
        for repeat in range(repeats):
            plain.append(_send(df, url, workers, None))
            path = Path(folder, f"run-{repeat}.sqlite")
            journalled.append(_send(df, url, workers, path))
    return plain, journalled


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.journal_overhead")
    parser.add_argument("--rows", type=int, default=2000, help="rows per run")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each configuration"
    )
    parser.add_argument(
        "--workers", type=int, default=10, help="connections (max_workers)"
    )
    parser.add_argument(
        "--sink",
        choices=("postfix", "aiosmtpd"),
        default="postfix" if postfix_tools() else "aiosmtpd",
        help="loopback server (default: postfix when smtp-sink is installed)",
    )
    args = parser.parse_args(argv)
    sink = PostfixSink() if args.sink == "postfix" else AiosmtpdSink()
    print(describe_machine())
    with sink:
        plain, journalled = measure(
            sink.url, rows=args.rows, repeats=args.repeats, workers=args.workers
        )
    print(
        f"\n{args.rows} rows, instant mode, {args.workers} connections, "
        f"sink: {args.sink}"
    )
    print(
        f"{'pair':>4}  {'no journal msg/s':>17}  {'journal msg/s':>14}  "
        f"{'ratio':>6}  {'CPU ms/msg without':>18}  {'with':>6}"
    )
    ratios = []
    for index, (without, with_journal) in enumerate(zip(plain, journalled), 1):
        ratio = with_journal.messages_per_second / without.messages_per_second
        ratios.append(ratio)
        print(
            f"{index:>4}  {without.messages_per_second:>17.0f}  "
            f"{with_journal.messages_per_second:>14.0f}  {ratio:>6.3f}  "
            f"{without.cpu_ms_per_message:>18.2f}  "
            f"{with_journal.cpu_ms_per_message:>6.2f}"
        )
    median_ratio = statistics.median(ratios)
    verdict = "meets" if median_ratio >= TARGET_RATIO else "misses"
    print(
        f"\nmedian throughput ratio (journal / no journal) over {len(ratios)} "
        f"pairs: {median_ratio:.3f}; {verdict} the target of {TARGET_RATIO} or more"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
