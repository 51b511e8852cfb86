"""The speed comparison: four sending designs against a latency-simulating server.

The designs are a sequential sender with a new connection per message, one
reused connection ("fast"), a plain ``ThreadPoolExecutor`` with one connection
per message ("instant" as often written), and mailkit's instant mode through
``send_bulk``. Each is run for several message counts against a latency
server (:class:`~benchmarks.latency_server.LatencyServerProcess`, in a process
of its own as a real provider is), repeats interleaved so that machine noise
hits every design alike, and the median of the repeats is kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from .baselines import (
    Endpoint,
    RunResult,
    send_aiosmtplib,
    send_one_connection,
    send_sequential,
    send_smtplib_pool,
    send_thread_pool,
)
from .latency_server import LatencyServer, LatencyServerProcess
from .mailkit_designs import send_prebuilt_with_mailkit, send_with_mailkit
from .targets import TargetCheck, at_least, at_most, targets_frame
from .workload import prebuilt_messages, recipients_frame

__all__ = ["SpeedReport", "SpeedSettings", "run_speed_comparison", "summarize"]

logger = logging.getLogger(__name__)

#: The four designs of the comparison table, in column order.
TABLE_DESIGNS = ("sequential", "fast", "thread pool", "mailkit instant")
#: Further designs measured for context when ``SpeedSettings.extra`` is set.
EXTRA_DESIGNS = ("smtplib pool", "aiosmtplib", "mailkit transport")

COLUMN_TITLES = {
    "sequential": "Sequential",
    "fast": "Fast",
    "thread pool": "Instant (thread pool)",
    "mailkit instant": "mailkit instant",
}

#: mailkit instant must beat the plain thread pool by this factor at 100 messages.
TARGET_SPEEDUP_OVER_THREAD_POOL = 2.3
#: mailkit instant must be within this factor of the lower bound at 100 messages.
TARGET_LOWER_BOUND_FACTOR = 1.10


@dataclass(frozen=True)
class SpeedSettings:
    """Message counts, profile, delay scale, connections and repeats of one run.

    ``small()`` gives a run of a few seconds for tests.
    """

    sizes: tuple[int, ...] = (10, 50, 100)
    profile: str = "gmail"
    scale: float = 0.1
    connections: int = 10
    repeats: int = 3
    extra: bool = True
    #: Whether the server enforces the profile's cap on concurrent sessions. It is
    #: off by default: a thread pool that quits and reconnects at full speed can
    #: briefly exceed the cap before the server has seen the old connections close,
    #: and a 421 would end the run instead of timing it.
    session_cap: bool = False
    #: Whether the latency server runs as a thread of this process instead of a
    #: process of its own. As a thread it competes with the clients for the GIL.
    in_process: bool = False

    @classmethod
    def small(cls) -> SpeedSettings:
        return cls(sizes=(5, 10, 20), scale=0.02, repeats=1, extra=True)

    @classmethod
    def for_size(cls, size: str) -> SpeedSettings:
        return cls.small() if size == "small" else cls()


@dataclass
class SpeedReport:
    """Every timed run, with the tables and targets derived from them."""

    settings: SpeedSettings
    setup_s: float
    message_s: float
    runs: list[RunResult] = field(default_factory=list)
    lower_bounds: dict[int, float] = field(default_factory=dict)

    def runs_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"design": run.design, "messages": run.messages, "elapsed_s": run.elapsed_s}
                for run in self.runs
            ],
            columns=["design", "messages", "elapsed_s"],
        )

    def medians(self) -> pd.DataFrame:
        """Return the median seconds per design (columns) and message count (rows)."""
        frame = self.runs_frame()
        table = frame.pivot_table(
            index="messages", columns="design", values="elapsed_s", aggfunc="median"
        )
        ordered = [d for d in (*TABLE_DESIGNS, *EXTRA_DESIGNS) if d in table.columns]
        return table[ordered]

    def table(self) -> pd.DataFrame:
        """Return the comparison table: median seconds per design, then speedups over
        the sequential design."""
        medians = self.medians()
        table = pd.DataFrame(index=medians.index)
        for design in TABLE_DESIGNS:
            table[f"{COLUMN_TITLES[design]} (s)"] = medians[design].round(3)
        for design in TABLE_DESIGNS[1:]:
            speedup = medians["sequential"] / medians[design]
            table[f"{COLUMN_TITLES[design]} speedup"] = speedup.map(
                lambda value: f"{value:.1f}x"
            )
        table.index.name = "messages"
        return table

    def details(self) -> pd.DataFrame:
        """Return every design's median seconds beside the lower bound."""
        medians = self.medians().round(3)
        medians["lower bound"] = [round(self.lower_bounds[n], 3) for n in medians.index]
        return medians

    def checks(self) -> list[TargetCheck]:
        medians = self.medians()
        n = max(medians.index)
        mailkit = medians.loc[n, "mailkit instant"]
        setting = (
            f"{n} messages, {self.settings.profile} profile x{self.settings.scale:g}, "
            f"{self.settings.connections} connections"
        )
        checks = [
            at_least(
                f"mailkit instant vs plain thread pool, speedup ({setting})",
                medians.loc[n, "thread pool"] / mailkit,
                TARGET_SPEEDUP_OVER_THREAD_POOL,
            ),
            at_most(
                f"mailkit instant / lower bound ({setting})",
                mailkit / self.lower_bounds[n],
                TARGET_LOWER_BOUND_FACTOR,
            ),
        ]

        # The same two ratios for the transport alone, which sends the same
        # prebuilt bytes as the thread pool. They show how much of a miss is the
        # wire path and how much is composing; the targets are set for send_bulk.
        if "mailkit transport" in medians.columns:
            transport = medians.loc[n, "mailkit transport"]
            checks += [
                at_least(
                    f"context: mailkit transport, prebuilt, vs plain thread pool ({setting})",
                    medians.loc[n, "thread pool"] / transport,
                    TARGET_SPEEDUP_OVER_THREAD_POOL,
                ),
                at_most(
                    f"context: mailkit transport, prebuilt / lower bound ({setting})",
                    transport / self.lower_bounds[n],
                    TARGET_LOWER_BOUND_FACTOR,
                ),
            ]
        return checks

    def targets(self) -> pd.DataFrame:
        return targets_frame(self.checks())

    def plot(self, ax=None):  # type: ignore[no-untyped-def]
        """Draw seconds per design against message count; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        medians = self.medians()
        for design in medians.columns:
            style = "-o" if design in TABLE_DESIGNS else ":."
            ax.plot(medians.index, medians[design], style, label=design)
        bounds = [self.lower_bounds[n] for n in medians.index]
        ax.plot(medians.index, bounds, "k--", label="lower bound, 10 connections")
        ax.set_xlabel("messages")
        ax.set_ylabel("seconds (median)")
        ax.set_yscale("log")
        ax.set_title(
            f"{self.settings.profile} profile, delays x{self.settings.scale:g}"
        )
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
        return ax


def _designs(
    settings: SpeedSettings,
) -> dict[str, Callable[[Endpoint, int], RunResult]]:
    connections = settings.connections
    designs: dict[str, Callable[[Endpoint, int], RunResult]] = {
        "sequential": lambda endpoint, n: send_sequential(endpoint, prebuilt_messages(n)),
        "fast": lambda endpoint, n: _renamed(
            send_one_connection(endpoint, prebuilt_messages(n)), "fast"
        ),
        "thread pool": lambda endpoint, n: send_thread_pool(
            endpoint, prebuilt_messages(n), threads=connections
        ),
        "mailkit instant": lambda endpoint, n: send_with_mailkit(
            endpoint, recipients_frame(n), workers=connections
        ),
    }
    if settings.extra:
        designs["smtplib pool"] = lambda endpoint, n: send_smtplib_pool(
            endpoint, prebuilt_messages(n), connections
        )
        designs["aiosmtplib"] = lambda endpoint, n: send_aiosmtplib(
            endpoint, prebuilt_messages(n), connections
        )
        designs["mailkit transport"] = lambda endpoint, n: send_prebuilt_with_mailkit(
            endpoint, prebuilt_messages(n), connections
        )
    return designs


def _renamed(run: RunResult, design: str) -> RunResult:
    return RunResult(design, run.messages, run.connections, run.elapsed_s)


def run_speed_comparison(
    settings: SpeedSettings = SpeedSettings(),
    *,
    on_run: Callable[[RunResult], None] | None = None,
) -> SpeedReport:
    """Run every design for every message count, ``settings.repeats`` times.

    ``on_run`` is called after each timed run, for progress output.
    """
    designs = _designs(settings)
    server: LatencyServer | LatencyServerProcess
    if settings.in_process:
        server = LatencyServer(
            settings.profile,
            scale=settings.scale,
            max_sessions=None if settings.session_cap else 0,
        )
    else:
        server = LatencyServerProcess(
            settings.profile,
            scale=settings.scale,
            max_sessions=None if settings.session_cap else 0,
        )
    with server:
        report = SpeedReport(
            settings=settings,
            setup_s=server.setup_time(),
            message_s=server.message_time(),
        )
        report.lower_bounds = {
            n: server.lower_bound(n, settings.connections) for n in settings.sizes
        }
        endpoint = server.endpoint()
        for repeat in range(settings.repeats):
            for n in settings.sizes:
                for name, design in designs.items():
                    run = _renamed(design(endpoint, n), name)
                    _settle(server)
                    report.runs.append(run)
                    logger.info(
                        "repeat %d: %s, %d messages, %.3f s", repeat + 1, name, n, run.elapsed_s
                    )
                    if on_run is not None:
                        on_run(run)
    return report


def _settle(server: LatencyServer | LatencyServerProcess) -> None:
    """Let the server close the last run's sessions before the next run."""
    if isinstance(server, LatencyServerProcess):
        server.settle()
        return
    server.server.wait_for_idle(timeout=30.0)
    # Forget the recorded sessions so memory stays flat over a long run.
    server.server.reset()


def summarize(report: SpeedReport) -> str:
    """Return the report as text tables for a terminal."""
    settings = report.settings
    lines = [
        f"Speed comparison: {settings.profile} profile, delays x{settings.scale:g}, "
        f"{settings.connections} connections, median of {settings.repeats} run(s), "
        + ("server in this process" if settings.in_process else "server in its own process"),
        f"setup {report.setup_s:.3f} s per connection, "
        f"{report.message_s:.3f} s per message (pipelined where offered)",
        "",
        report.table().to_string(),
        "",
        "All designs, median seconds:",
        report.details().to_string(),
        "",
        "Targets:",
        report.targets().to_string(index=False),
    ]
    return "\n".join(lines)
