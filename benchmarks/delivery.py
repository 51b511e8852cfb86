"""Pooling, pipelining and adaptive concurrency against a Gmail-like latency server.

Run from the repository root::

    python -m benchmarks.delivery --repeats 5

Each repeat runs every design once, in turn, against
:class:`~benchmarks.latency_server.LatencyServer` with the ``gmail`` profile
(delays scaled by ``--scale``), so machine noise hits every design alike. The
medians of the repeats give these ratios, each checked against its target:

- speedup: mailkit instant mode (10 pooled connections, pipelined) against a
  ``ThreadPoolExecutor(10)`` that opens one connection per message; at least 2.3.
- lower bound: mailkit's time against setup + ceil(n / 10) x the pipelined
  message time, the fastest any design with 10 sessions can be; at most 1.10.
- adaptive: mailkit with ``max_connections=30``, not told the server's cap of 15
  sessions, against a pool sized to exactly 15; at least 0.90 of its throughput.
- pipelining: mailkit's 10 pooled connections against the same server without
  PIPELINING, for the gain of sending MAIL, RCPT and DATA in one round trip
  (reported, no target).

Before the timed runs, mailkit sends one untimed test message, as a user does
before a batch, so its timed batches find a recent login and let every
connection log in at once. The design "mailkit pooled, first login" clears
that login from the registry before each run. Its connections then wait for
the first login, which costs one AUTH delay, and its ratios are reported
against the same targets.

mailkit's times are end to end through ``send_bulk``: preflight, composing every
row, sending, and building the results DataFrame.

By default each latency server runs in a process of its own, as a real provider
does: a server thread in the benchmark's process would compete with the client
threads for the one GIL. ``--in-process`` runs the servers as threads instead.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pandas as pd

import mailkit
from mailkit.logins import recent_logins

from .baselines import send_thread_pool
from .latency_server import DEFAULT_SCALE, LatencyServer, LatencyServerProcess
from .machine import describe_machine
from .targets import TargetCheck, at_least, at_most, targets_frame
from .workload import TEMPLATES, prebuilt_messages, recipients_frame

__all__ = ["DeliveryReport", "main", "run_delivery_benchmark"]

logger = logging.getLogger(__name__)

MESSAGES = 100
CONNECTIONS = 10
#: The connection cap mailkit is given in the adaptive run; above the profile's
#: session cap, so mailkit must find the cap from the server's 421 replies.
ADAPTIVE_MAX_CONNECTIONS = 30

#: The design whose connections wait for the first login, as in the first
#: batch of a process.
FIRST_LOGIN_DESIGN = "mailkit pooled, first login"

TARGET_SPEEDUP = 2.3
TARGET_LOWER_BOUND_FACTOR = 1.10
TARGET_ADAPTIVE_SHARE = 0.90


@dataclass
class DeliveryReport:
    """Times in seconds of every design and repeat, and the server's figures."""

    messages: int
    scale: float
    session_cap: int
    lower_bound_s: float
    in_process: bool = False
    times: dict[str, list[float]] = field(default_factory=dict)
    adaptive_attrs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, design: str) -> float:
        return statistics.median(self.times[design])

    def medians(self) -> pd.DataFrame:
        rows = [
            {
                "design": design,
                "median_s": round(self.median(design), 3),
                "messages_per_s": round(self.messages / self.median(design), 1),
                "runs_s": ", ".join(f"{value:.3f}" for value in values),
            }
            for design, values in self.times.items()
        ]
        return pd.DataFrame(rows).set_index("design")

    def checks(self) -> list[TargetCheck]:
        return [
            *self._pooled_checks("mailkit pooled", "mailkit pooled, pipelined"),
            *self._pooled_checks("mailkit pooled, first login", FIRST_LOGIN_DESIGN),
            at_least(
                "adaptive (cap not given) vs pool sized to the cap, throughput share",
                self.median(f"mailkit pool of {self.session_cap}")
                / self.median("mailkit adaptive, max_connections=30"),
                TARGET_ADAPTIVE_SHARE,
            ),
        ]

    def _pooled_checks(self, label: str, design: str) -> list[TargetCheck]:
        """Return the speedup and lower-bound checks of one pooled design."""
        pooled = self.median(design)
        thread_pool = self.median("thread pool, connection per message")
        return [
            at_least(f"{label} vs thread pool, speedup", thread_pool / pooled, TARGET_SPEEDUP),
            at_most(
                f"{label} vs lower bound, time factor",
                pooled / self.lower_bound_s,
                TARGET_LOWER_BOUND_FACTOR,
            ),
        ]

    def pipelining_gain(self) -> float:
        return self.median("mailkit pooled, not pipelined") / self.median(
            "mailkit pooled, pipelined"
        )


def _send_bulk(
    server: Any, messages: int, *, first_login: bool = False, **options: Any
) -> float:
    frame = recipients_frame(messages)
    if first_login:
        recent_logins.clear()
    started = time.perf_counter()
    results = mailkit.send_bulk(
        frame, **TEMPLATES, smtp=server.smtp_config(), progress=False, **options
    )
    elapsed = time.perf_counter() - started
    not_sent = results[results["status"] != "sent"]
    if len(not_sent):
        raise RuntimeError(
            f"{len(not_sent)} of {messages} rows were not sent; the first: "
            f"{not_sent.iloc[0]['status']}: {not_sent.iloc[0]['error']}"
        )
    _send_bulk.last_attrs = dict(results.attrs)  # type: ignore[attr-defined]
    return elapsed


def _settle(server: Any) -> None:
    # Wait until the previous design's sessions are closed, so that the next one
    # finds every session slot free.
    if isinstance(server, LatencyServerProcess):
        server.settle()
        return
    server.server.wait_for_idle(timeout=30.0)
    # Forget the recorded sessions so that memory stays flat.
    server.server.reset()


def run_delivery_benchmark(
    *,
    messages: int = MESSAGES,
    scale: float = DEFAULT_SCALE,
    repeats: int = 5,
    in_process: bool = False,
    on_run: Callable[[str, float], None] | None = None,
) -> DeliveryReport:
    """Run every design ``repeats`` times, interleaved, and return the times."""
    # The session cap applies only where adaptive concurrency is measured: the
    # other designs stay below it, and sessions that are still closing on the
    # server would otherwise count against it.
    if in_process:
        capped: Any = LatencyServer("gmail", scale=scale)
        uncapped: Any = LatencyServer("gmail", scale=scale, max_sessions=0)
        plain: Any = LatencyServer("gmail", scale=scale, pipelining=False, max_sessions=0)
    else:
        capped = LatencyServerProcess(scale=scale)
        uncapped = LatencyServerProcess(scale=scale, max_sessions=0)
        plain = LatencyServerProcess(scale=scale, pipelining=False, max_sessions=0)
    with capped, uncapped, plain:
        cap = capped.max_sessions
        if cap is None:
            raise RuntimeError("The gmail profile has no session cap to discover.")
        report = DeliveryReport(
            messages=messages,
            scale=scale,
            session_cap=cap,
            lower_bound_s=uncapped.lower_bound(messages, CONNECTIONS),
            in_process=in_process,
        )
        endpoint = uncapped.endpoint()
        designs: dict[str, tuple[Any, Callable[[], float]]] = {
            "thread pool, connection per message": (
                uncapped,
                lambda: send_thread_pool(
                    endpoint, prebuilt_messages(messages), threads=CONNECTIONS
                ).elapsed_s,
            ),
            "mailkit pooled, pipelined": (
                uncapped,
                lambda: _send_bulk(uncapped, messages, max_workers=CONNECTIONS),
            ),
            FIRST_LOGIN_DESIGN: (
                uncapped,
                lambda: _send_bulk(
                    uncapped, messages, first_login=True, max_workers=CONNECTIONS
                ),
            ),
            "mailkit pooled, not pipelined": (
                plain,
                lambda: _send_bulk(plain, messages, max_workers=CONNECTIONS),
            ),
            f"mailkit pool of {cap}": (
                capped,
                lambda: _send_bulk(capped, messages, max_workers=cap, max_connections=cap),
            ),
            "mailkit adaptive, max_connections=30": (
                capped,
                lambda: _send_bulk(
                    capped,
                    messages,
                    max_workers=ADAPTIVE_MAX_CONNECTIONS,
                    max_connections=ADAPTIVE_MAX_CONNECTIONS,
                ),
            ),
        }
        # The test message a user sends before a batch; its login lets the
        # timed batches' connections log in at once.
        for server in (uncapped, plain, capped):
            _send_bulk(server, 1)
        for repeat in range(repeats):
            for name, (server, run) in designs.items():
                _settle(server)
                elapsed = run()
                report.times.setdefault(name, []).append(elapsed)
                if name.startswith("mailkit adaptive"):
                    report.adaptive_attrs.append(_send_bulk.last_attrs)  # type: ignore[attr-defined]
                logger.info("repeat %d: %s, %.3f s", repeat + 1, name, elapsed)
                if on_run is not None:
                    on_run(name, elapsed)
    return report


def summarize(report: DeliveryReport) -> str:
    """Return the medians, the targets and the adaptive run's limits as text."""
    adaptive = report.adaptive_attrs
    lowest = [attrs["lowest_connection_limit"] for attrs in adaptive]
    events = [attrs["throttle_events"] for attrs in adaptive]
    lines = [
        f"Delivery benchmark: gmail profile, delays x{report.scale:g}, "
        f"{report.messages} messages, median of {len(report.times[next(iter(report.times))])} "
        "interleaved run(s), servers "
        + ("in this process" if report.in_process else "in their own processes"),
        f"lower bound for {CONNECTIONS} connections: {report.lower_bound_s:.3f} s "
        "(setup + ceil(n / connections) x pipelined message time)",
        "",
        report.medians().to_string(),
        "",
        f"pipelining gain (not pipelined / pipelined): {report.pipelining_gain():.2f}x",
        f"adaptive runs: lowest connection limit {lowest}, throttle events {events}, "
        f"server session cap {report.session_cap}",
        "",
        "Targets:",
        targets_frame(report.checks()).to_string(index=False),
    ]
    return "\n".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.delivery",
        description="Time pooled, pipelined and adaptive sending against a "
        "Gmail-like latency server on 127.0.0.1 and print the ratios.",
    )
    parser.add_argument(
        "--messages", type=int, default=MESSAGES, help="messages per run (default 100)"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=DEFAULT_SCALE,
        help="factor applied to every profile delay (default 0.1)",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved runs per design (default 5)"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the latency servers as threads of this process",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(describe_machine())

    def progress(name: str, elapsed: float) -> None:
        print(f"  {name}: {elapsed:.3f} s", flush=True)

    report = run_delivery_benchmark(
        messages=args.messages,
        scale=args.scale,
        repeats=args.repeats,
        in_process=args.in_process,
        on_run=progress,
    )
    print(summarize(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
