"""Loopback throughput: messages per second with no added latency.

Every client sends the same prebuilt messages of about 2 KB to a sink on
127.0.0.1: Postfix's ``smtp-sink`` (a C server, which costs the client little) and an aiosmtpd
sink (a Python server, which caps every client near its own speed). Postfix's
``smtp-source`` with reused sessions is the ceiling for this machine, and every
figure is given as a ratio to it, measured on the same sink in the same run.

mailkit is measured twice: its transport sending the prebuilt messages over
pooled connections, and ``send_bulk`` end to end from a DataFrame (composing
included) in each mode and for several worker counts.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, Union

import pandas as pd

from .baselines import (
    Endpoint,
    RunResult,
    send_aiosmtplib,
    send_one_connection,
    send_smtplib_pool,
    send_thread_pool,
)
from .mailkit_designs import send_prebuilt_with_mailkit, send_with_mailkit
from .sinks import AiosmtpdSink, PostfixSink, SourceResult, postfix_tools, run_smtp_source
from .targets import TargetCheck, at_least, targets_frame
from .workload import prebuilt_messages, recipients_frame

__all__ = ["ThroughputReport", "ThroughputSettings", "run_throughput", "summarize"]

logger = logging.getLogger(__name__)

Result = Union[RunResult, SourceResult]

CEILING = "smtp-source -d"
#: mailkit's transport must reach this share of smtp-source's rate on smtp-sink.
TARGET_SHARE_OF_SMTP_SOURCE = 0.40


@dataclass(frozen=True)
class ThroughputSettings:
    """Message count, connections, worker counts, sinks and repeats of one run.

    ``small()`` gives a run of a few seconds for tests.
    """

    messages: int = 2000
    connections: int = 10
    worker_counts: tuple[int, ...] = (1, 2, 4, 10)
    sinks: tuple[str, ...] = ("smtp-sink", "aiosmtpd")
    repeats: int = 3

    @classmethod
    def small(cls) -> ThroughputSettings:
        return cls(messages=200, worker_counts=(1, 10), repeats=1)

    @classmethod
    def for_size(cls, size: str) -> ThroughputSettings:
        return cls.small() if size == "small" else cls()


@dataclass
class ThroughputReport:
    """Every timed run per sink, with the tables and targets derived from them."""

    settings: ThroughputSettings
    runs: list[tuple[str, Result]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def runs_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "sink": sink,
                    "design": run.design,
                    "connections": run.connections,
                    "messages": run.messages,
                    "elapsed_s": run.elapsed_s,
                    "messages_per_second": run.messages_per_second,
                }
                for sink, run in self.runs
            ],
            columns=[
                "sink",
                "design",
                "connections",
                "messages",
                "elapsed_s",
                "messages_per_second",
            ],
        )

    def table(self) -> pd.DataFrame:
        """Return the median messages per second per sink and design, with the
        ratio to smtp-source with reused sessions on the same sink."""
        frame = self.runs_frame()
        grouped = (
            frame.groupby(["sink", "design"], sort=False)
            .agg(
                connections=("connections", "first"),
                messages_per_second=("messages_per_second", "median"),
            )
            .reset_index()
        )
        ceilings = grouped[grouped["design"].str.startswith(CEILING)].set_index("sink")[
            "messages_per_second"
        ]
        grouped["vs smtp-source -d"] = [
            round(rate / ceilings[sink], 2) if sink in ceilings.index else float("nan")
            for sink, rate in zip(grouped["sink"], grouped["messages_per_second"])
        ]
        grouped["messages_per_second"] = grouped["messages_per_second"].round(0)
        return grouped.set_index(["sink", "design"])

    def _rate(self, sink: str, prefix: str) -> float | None:
        table = self.table()
        if sink not in table.index.get_level_values("sink"):
            return None
        rows = table.loc[sink]
        matches = rows[rows.index.str.startswith(prefix)]
        if not len(matches):
            return None
        return float(matches["messages_per_second"].iloc[0])

    def checks(self) -> list[TargetCheck]:
        sink = "smtp-sink" if "smtp-sink" in self.settings.sinks else self.settings.sinks[0]
        ceiling = self._rate(sink, CEILING)
        transport = self._rate(sink, "mailkit transport")
        pool = self._rate(sink, "smtplib pool")
        n = self.settings.connections
        workers = n if n in self.settings.worker_counts else max(self.settings.worker_counts)
        end_to_end = self._rate(sink, f"mailkit instant x{workers}")
        checks: list[TargetCheck] = []

        if ceiling and transport:
            checks.append(
                at_least(
                    f"mailkit transport, prebuilt, {n} connections / smtp-source -d -s {n} "
                    f"({sink})",
                    transport / ceiling,
                    TARGET_SHARE_OF_SMTP_SOURCE,
                )
            )

        if transport and pool:
            checks.append(
                at_least(
                    f"mailkit transport / hand-written smtplib pool, {n} connections ({sink})",
                    transport / pool,
                    1.0,
                )
            )

        if ceiling and end_to_end:
            checks.append(
                at_least(
                    f"mailkit instant from a DataFrame, {workers} workers / smtp-source -d -s {n} "
                    f"({sink}; reported with the same target, composing included)",
                    end_to_end / ceiling,
                    TARGET_SHARE_OF_SMTP_SOURCE,
                )
            )
        return checks

    def targets(self) -> pd.DataFrame:
        return targets_frame(self.checks())

    def plot(self, ax=None):  # type: ignore[no-untyped-def]
        """Draw a horizontal bar per design and sink; returns the axes."""
        import matplotlib.pyplot as plt

        rates = self.table()["messages_per_second"]
        designs = list(dict.fromkeys(rates.index.get_level_values("design")))
        table = rates.unstack("sink").reindex(designs)
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 0.35 * len(table) + 1.5))
        table.iloc[::-1].plot.barh(ax=ax)
        ax.set_xlabel("messages per second (median)")
        ax.set_ylabel("")
        ax.set_title(f"Loopback, {self.settings.messages} messages of about 2 KB")
        return ax


@contextmanager
def _open_sink(name: str) -> Iterator[PostfixSink | AiosmtpdSink]:
    sink: PostfixSink | AiosmtpdSink
    if name == "smtp-sink":
        sink = PostfixSink()
    elif name == "aiosmtpd":
        sink = AiosmtpdSink()
    else:
        raise ValueError(f"Unknown sink {name!r}: use 'smtp-sink' or 'aiosmtpd'.")
    with sink:
        yield sink


def _designs(settings: ThroughputSettings) -> dict[str, Callable[[int, Endpoint], Result]]:
    n = settings.connections
    messages = prebuilt_messages(settings.messages)
    frame = recipients_frame(settings.messages)
    designs: dict[str, Callable[[int, Endpoint], Result]] = {
        f"smtp-source -d -s {n}": lambda port, endpoint: run_smtp_source(
            port, messages[0], count=len(messages), sessions=n
        ),
        f"smtp-source -s {n}": lambda port, endpoint: run_smtp_source(
            port, messages[0], count=len(messages), sessions=n, reuse_sessions=False
        ),
        "mailkit transport": lambda port, endpoint: send_prebuilt_with_mailkit(
            endpoint, messages, n
        ),
        # Two threads, one per core: with ten, the threads spend much of their
        # time handing the GIL to each other on a server without latency.
        "mailkit transport x2": lambda port, endpoint: send_prebuilt_with_mailkit(
            endpoint, messages, 2, design="mailkit transport x2"
        ),
        "smtplib pool": lambda port, endpoint: send_smtplib_pool(endpoint, messages, n),
        "aiosmtplib": lambda port, endpoint: send_aiosmtplib(endpoint, messages, n),
        "smtplib, one connection": lambda port, endpoint: send_one_connection(
            endpoint, messages
        ),
        f"thread pool ({n}), new connection per message": lambda port, endpoint: (
            send_thread_pool(endpoint, messages, n)
        ),
        "mailkit fast": lambda port, endpoint: send_with_mailkit(
            endpoint, frame, mode="fast"
        ),
    }
    for workers in settings.worker_counts:
        designs[f"mailkit instant x{workers}"] = (
            lambda port, endpoint, workers=workers: send_with_mailkit(
                endpoint, frame, mode="instant", workers=workers
            )
        )
    return designs


def run_throughput(
    settings: ThroughputSettings = ThroughputSettings(),
    *,
    on_run: Callable[[str, Result], None] | None = None,
) -> ThroughputReport:
    """Run every design against every sink, ``settings.repeats`` times, interleaved.

    A sink that is not installed (smtp-sink without Postfix) is left out and
    named in ``report.skipped``.
    """
    report = ThroughputReport(settings)
    sinks = list(settings.sinks)
    if "smtp-sink" in sinks and postfix_tools() is None:
        sinks.remove("smtp-sink")
        report.skipped["smtp-sink"] = (
            "Postfix's smtp-sink and smtp-source are not installed; run "
            ".ci/system-packages as root."
        )
    designs = _designs(settings)
    for repeat in range(settings.repeats):
        for sink_name in sinks:
            with _open_sink(sink_name) as sink:
                endpoint = Endpoint(host="127.0.0.1", port=sink.port)
                for name, design in designs.items():
                    if name.startswith("smtp-source") and postfix_tools() is None:
                        continue
                    run = design(sink.port, endpoint)
                    run = _named(run, name)
                    report.runs.append((sink_name, run))
                    logger.info(
                        "repeat %d, %s: %s %.0f msg/s",
                        repeat + 1,
                        sink_name,
                        name,
                        run.messages_per_second,
                    )
                    if on_run is not None:
                        on_run(sink_name, run)
    return report


def _named(run: Result, design: str) -> Result:
    if isinstance(run, SourceResult):
        return SourceResult(design, run.messages, run.connections, run.elapsed_s)
    return RunResult(design, run.messages, run.connections, run.elapsed_s)


def summarize(report: ThroughputReport) -> str:
    """Return the report as text tables for a terminal."""
    settings = report.settings
    lines = [
        f"Loopback throughput: {settings.messages} messages of about 2 KB, "
        f"median of {settings.repeats} run(s)",
    ]
    for sink, reason in report.skipped.items():
        lines.append(f"{sink} left out: {reason}")
    lines += [
        "",
        report.table().to_string(),
        "",
        "Targets:",
        report.targets().to_string(index=False),
    ]
    return "\n".join(lines)


def sink_list(value: str) -> Sequence[str]:
    """Parse a comma-separated list of sink names for the command line."""
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(set(names) - {"smtp-sink", "aiosmtpd"})
    if unknown:
        raise ValueError(f"Unknown sink(s) {unknown}: use smtp-sink and/or aiosmtpd.")
    return names
