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

mailkit's times are end to end through ``send_bulk``: preflight, composing every
row, sending, and building the results DataFrame.
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

from .baselines import send_thread_pool
from .latency_server import DEFAULT_SCALE, LatencyServer
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
        pooled = self.median("mailkit pooled, pipelined")
        return [
            at_least(
                "mailkit pooled vs thread pool, speedup",
                self.median("thread pool, connection per message") / pooled,
                TARGET_SPEEDUP,
            ),
            at_most(
                "mailkit pooled vs lower bound, time factor",
                pooled / self.lower_bound_s,
                TARGET_LOWER_BOUND_FACTOR,
            ),
            at_least(
                "adaptive (cap not given) vs pool sized to the cap, throughput share",
                self.median(f"mailkit pool of {self.session_cap}")
                / self.median("mailkit adaptive, max_connections=30"),
                TARGET_ADAPTIVE_SHARE,
            ),
        ]

    def pipelining_gain(self) -> float:
        return self.median("mailkit pooled, not pipelined") / self.median(
            "mailkit pooled, pipelined"
        )


def _send_bulk(server: LatencyServer, messages: int, **options: Any) -> float:
    frame = recipients_frame(messages)
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


def _settle(server: LatencyServer) -> None:
    # Wait until the previous design's sessions are closed, so that the next one
    # finds every session slot free, and forget the recorded sessions.
    server.server.wait_for_idle(timeout=30.0)
    server.server.reset()


def run_delivery_benchmark(
    *,
    messages: int = MESSAGES,
    scale: float = DEFAULT_SCALE,
    repeats: int = 5,
    on_run: Callable[[str, float], None] | None = None,
) -> DeliveryReport:
    """Run every design ``repeats`` times, interleaved, and return the times."""
    capped = LatencyServer("gmail", scale=scale)
    plain = LatencyServer("gmail", scale=scale, pipelining=False)
    # The thread pool opens a connection per message, and its new connections can
    # reach the server before the server has seen the previous ones close, which
    # the session cap answers with 421. It runs without the cap, so its time is
    # never inflated by rejected connections.
    uncapped = LatencyServer("gmail", scale=scale, max_sessions=0)
    with capped, plain, uncapped:
        cap = capped.max_sessions
        if cap is None:
            raise RuntimeError("The gmail profile has no session cap to discover.")
        report = DeliveryReport(
            messages=messages,
            scale=scale,
            session_cap=cap,
            lower_bound_s=capped.lower_bound(messages, CONNECTIONS),
        )
        endpoint = uncapped.endpoint()
        designs: dict[str, tuple[LatencyServer, Callable[[], float]]] = {
            "thread pool, connection per message": (
                uncapped,
                lambda: send_thread_pool(
                    endpoint, prebuilt_messages(messages), threads=CONNECTIONS
                ).elapsed_s,
            ),
            "mailkit pooled, pipelined": (
                capped,
                lambda: _send_bulk(capped, messages, max_workers=CONNECTIONS),
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
        "interleaved run(s)",
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
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(describe_machine())

    def progress(name: str, elapsed: float) -> None:
        print(f"  {name}: {elapsed:.3f} s", flush=True)

    report = run_delivery_benchmark(
        messages=args.messages, scale=args.scale, repeats=args.repeats, on_run=progress
    )
    print(summarize(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
