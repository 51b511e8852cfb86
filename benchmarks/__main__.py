"""Command line for the benchmarks: ``python -m benchmarks {speed,throughput,memory,profile,all}``.

Run it from the repository root. Each command prints the machine, the tables and
the targets with the figures measured in the same run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from .latency_server import available_profiles
from .machine import describe_machine
from .settings import SIZE_ENV, bench_size

__all__ = ["main"]


def _integers(value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"invalid list {value!r}: give whole numbers separated by commas"
        ) from exc
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(
            f"invalid list {value!r}: give whole numbers of 1 or more"
        )
    return numbers


def _sinks(value: str) -> tuple[str, ...]:
    from .throughput import sink_list

    try:
        return tuple(sink_list(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _run_speed(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from .speed import SpeedSettings, run_speed_comparison, summarize

    settings = SpeedSettings.for_size(args.size)
    changes = {
        name: getattr(args, name)
        for name in ("sizes", "profile", "scale", "connections", "repeats")
        if getattr(args, name) is not None
    }
    if getattr(args, "in_process", False):
        changes["in_process"] = True
    settings = replace(settings, **changes)
    report = run_speed_comparison(settings, on_run=_progress(args))
    print(summarize(report))


def _run_throughput(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from .throughput import ThroughputSettings, run_throughput, summarize

    settings = ThroughputSettings.for_size(args.size)
    changes = {
        name: getattr(args, name)
        for name in ("messages", "connections", "worker_counts", "sinks", "repeats")
        if getattr(args, name) is not None
    }
    settings = replace(settings, **changes)
    report = run_throughput(
        settings, on_run=(lambda sink, run: _progress(args)(run)) if args.verbose else None
    )
    print(summarize(report))


def _run_memory(args: argparse.Namespace) -> None:
    from .memory import measure_peak_memory

    rows = args.rows or (5_000 if args.size == "small" else 100_000)
    result = measure_peak_memory(
        rows,
        workers=args.workers,
        sink=args.sink,
        trace=args.tracemalloc,
        timeout=args.timeout,
    )
    print(f"Peak memory of send_bulk for {rows:,} rows, measured in a child process")
    print()
    print(result.as_frame().to_string())
    print()
    print("Targets:")
    print(result.targets().to_string(index=False))


def _run_profile(args: argparse.Namespace) -> None:
    from .profiling import profile_end_to_end, summarize

    rows = args.rows or (300 if args.size == "small" else 2000)
    print(summarize(profile_end_to_end(rows, workers=args.workers, sink=args.sink)))


def _progress(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    def report(run) -> None:  # type: ignore[no-untyped-def]
        if args.verbose:
            print(
                f"  {run.design}: {run.messages} messages in {run.elapsed_s:.3f} s",
                file=sys.stderr,
                flush=True,
            )

    return report


def _run_all(args: argparse.Namespace) -> None:
    for name, runner in (
        ("speed", _run_speed),
        ("throughput", _run_throughput),
        ("memory", _run_memory),
        ("profile", _run_profile),
    ):
        print(f"== {name} ==")
        runner(args)
        print()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run mailkit's benchmarks on 127.0.0.1 and print the tables.",
    )
    parser.add_argument(
        "--size",
        choices=("full", "small"),
        help=f"full (the recorded figures) or small (seconds, for tests); default "
        f"${SIZE_ENV} or full",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print each timed run to stderr"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    speed = commands.add_parser(
        "speed", help="four designs against a latency-simulating server"
    )
    speed.add_argument(
        "--sizes", type=_integers, help="message counts, such as 10,50,100"
    )
    speed.add_argument(
        "--profile", help=f"provider profile: {', '.join(available_profiles())} or a JSON path"
    )
    speed.add_argument("--scale", type=float, help="factor for every delay (full: 0.1)")
    speed.add_argument("--connections", type=int, help="connections and threads (default 10)")
    speed.add_argument("--repeats", type=int, help="runs per design, median kept (full: 3)")
    speed.add_argument(
        "--in-process",
        action="store_true",
        help="run the latency server as a thread of this process",
    )
    speed.set_defaults(handler=_run_speed)

    throughput = commands.add_parser("throughput", help="loopback messages per second")
    throughput.add_argument("--messages", type=int, help="messages per run (full: 2000)")
    throughput.add_argument("--connections", type=int, help="connections (default 10)")
    throughput.add_argument(
        "--workers",
        dest="worker_counts",
        type=_integers,
        help="worker counts for send_bulk instant mode, such as 1,2,4,10",
    )
    throughput.add_argument(
        "--sinks", type=_sinks, help="smtp-sink and/or aiosmtpd, comma-separated"
    )
    throughput.add_argument("--repeats", type=int, help="runs per design, median kept (full: 3)")
    throughput.set_defaults(handler=_run_throughput)

    memory = commands.add_parser("memory", help="peak memory of send_bulk in a child process")
    memory.add_argument("--rows", type=int, help="rows to send (full: 100000)")
    memory.add_argument("--workers", type=int, default=10, help="connections (default 10)")
    memory.add_argument(
        "--sink", choices=("smtp-sink", "aiosmtpd"), default="smtp-sink", help="server"
    )
    memory.add_argument(
        "--tracemalloc", action="store_true", help="also report tracemalloc's peak (slower)"
    )
    memory.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds before the run is ended (default 1800)"
    )
    memory.set_defaults(handler=_run_memory)

    profile = commands.add_parser("profile", help="where the time of send_bulk goes")
    profile.add_argument("--rows", type=int, help="rows to send (full: 2000)")
    profile.add_argument("--workers", type=int, default=10, help="connections (default 10)")
    profile.add_argument(
        "--sink", choices=("smtp-sink", "aiosmtpd"), default="smtp-sink", help="server"
    )
    profile.set_defaults(handler=_run_profile)

    every = commands.add_parser("all", help="speed, throughput, memory and profile in turn")
    every.set_defaults(
        handler=_run_all,
        sizes=None,
        profile=None,
        scale=None,
        connections=None,
        repeats=None,
        messages=None,
        worker_counts=None,
        sinks=None,
        rows=None,
        workers=10,
        sink="smtp-sink",
        tracemalloc=False,
        timeout=1800.0,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.size = args.size or bench_size()
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"machine: {describe_machine()}")
    print(f"size: {args.size}")
    print()
    args.handler(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
