"""Peak memory of ``send_bulk`` for a large DataFrame, measured in a subprocess.

The parent starts a sink on 127.0.0.1 and runs ``python -m benchmarks.memory``
as a child, so that nothing else in the parent (a notebook kernel, earlier
benchmarks) counts. The child builds the DataFrame, records its resident set
size (RSS), resets the kernel's peak RSS counter, sends every row, and reports
the peak. The figure checked against the target is the peak minus the RSS with
the DataFrame already built: everything that sending adds, the results
DataFrame included.

With ``tracemalloc`` the child also reports the peak of Python's own
allocations during the send. Tracing slows the run down about twofold, so it is
a separate child.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from .sinks import AiosmtpdSink, PostfixSink, postfix_tools
from .targets import TargetCheck, at_most, targets_frame

__all__ = ["MemoryResult", "measure_peak_memory"]

ROOT = Path(__file__).resolve().parent.parent
#: Bytes per megabyte (SI), the unit of the target and of the reports.
MB = 1_000_000
#: Sending must add at most this many MB to the RSS of a process that already
#: contains the 100,000-row DataFrame.
TARGET_MAX_GROWTH_MB = 300.0
_SAMPLE_INTERVAL_S = 0.005


@dataclass(frozen=True)
class MemoryResult:
    """Figures measured by the child process, sizes in bytes."""

    rows: int
    workers: int
    sink: str
    frame_bytes: int
    rss_before_frame: int
    rss_with_frame: int
    peak_rss: int
    peak_method: str
    elapsed_s: float
    sent: int
    traced_peak: int | None = None

    @property
    def growth(self) -> int:
        """Peak RSS minus the RSS with the DataFrame built: what sending added."""
        return self.peak_rss - self.rss_with_frame

    def as_frame(self) -> pd.DataFrame:
        rows = {
            "rows": self.rows,
            "workers": self.workers,
            "sink": self.sink,
            "DataFrame, deep size (MB)": self.frame_bytes / MB,
            "RSS before the DataFrame (MB)": self.rss_before_frame / MB,
            "RSS with the DataFrame (MB)": self.rss_with_frame / MB,
            "peak RSS while sending (MB)": self.peak_rss / MB,
            "peak above the DataFrame (MB)": self.growth / MB,
            "peak measured by": self.peak_method,
            "rows sent": self.sent,
            "send time (s)": self.elapsed_s,
        }
        if self.traced_peak is not None:
            rows["tracemalloc peak while sending (MB)"] = self.traced_peak / MB
        frame = pd.DataFrame({"value": pd.Series(rows, dtype=object)})
        return frame.map(lambda value: round(value, 1) if isinstance(value, float) else value)

    def checks(self) -> list[TargetCheck]:
        return [
            at_most(
                f"peak RSS above the DataFrame, MB ({self.rows:,} rows, "
                f"{self.workers} workers)",
                self.growth / MB,
                TARGET_MAX_GROWTH_MB,
            )
        ]

    def targets(self) -> pd.DataFrame:
        return targets_frame(self.checks())


def measure_peak_memory(
    rows: int = 100_000,
    *,
    workers: int = 10,
    sink: str = "smtp-sink",
    trace: bool = False,
    timeout: float = 1800.0,
) -> MemoryResult:
    """Send ``rows`` rows with ``send_bulk`` in a child process and return its peak.

    ``sink`` is "smtp-sink" (falls back to "aiosmtpd" when Postfix is missing)
    or "aiosmtpd". ``trace`` turns on tracemalloc in the child. Raises
    RuntimeError when the child fails or runs longer than ``timeout`` seconds.
    """
    if sink == "smtp-sink" and postfix_tools() is None:
        sink = "aiosmtpd"
    # The sink must outlive the child, whose run is bounded by ``timeout``.
    server = (
        PostfixSink(max_lifetime=timeout + 60.0) if sink == "smtp-sink" else AiosmtpdSink()
    )
    with server:
        command = [
            sys.executable,
            "-m",
            "benchmarks.memory",
            "--rows",
            str(rows),
            "--workers",
            str(workers),
            "--port",
            str(server.port),
        ]
        if trace:
            command.append("--tracemalloc")
        environment = dict(os.environ)
        paths = [str(ROOT), environment.get("PYTHONPATH", "")]
        environment["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
        environment["MAILKIT_PROGRESS"] = "0"
        try:
            completed = subprocess.run(
                command,
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=environment,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"The memory benchmark child timed out after {timeout:g} s sending "
                f"{rows:,} rows; send fewer rows or allow a longer timeout."
            ) from exc
    if completed.returncode != 0:
        raise RuntimeError(
            f"The memory benchmark child failed with status {completed.returncode}: "
            f"{completed.stderr.strip()[-2000:]}"
        )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return MemoryResult(sink=sink, **report)


# -- the child process ------------------------------------------------------------


def _status_bytes(field_name: str) -> int:
    """Return a field of /proc/self/status such as VmRSS or VmHWM, in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field_name} field.")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0 and later); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class _RSSSampler:
    """Samples VmRSS every few milliseconds, where VmHWM cannot be reset."""

    def __init__(self) -> None:
        self.peak = _status_bytes("VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss-sampler")

    def _run(self) -> None:
        while not self._stop.wait(_SAMPLE_INTERVAL_S):
            self.peak = max(self.peak, _status_bytes("VmRSS"))

    def __enter__(self) -> _RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_bytes("VmRSS"))


def _child(rows: int, workers: int, port: int, trace: bool) -> dict[str, object]:
    import mailkit

    from .workload import TEMPLATES, recipients_frame

    gc.collect()
    rss_before_frame = _status_bytes("VmRSS")
    frame = recipients_frame(rows)
    gc.collect()
    frame_bytes = int(frame.memory_usage(deep=True).sum())
    rss_with_frame = _status_bytes("VmRSS")
    peak_method = "VmHWM after clear_refs"
    if not _reset_peak_rss():
        peak_method = "VmRSS sampled every 5 ms"
    if trace:
        tracemalloc.start()
    sampler = _RSSSampler()
    started = time.perf_counter()
    with sampler:
        results = mailkit.send_bulk(
            frame,
            **TEMPLATES,
            smtp=f"smtp://127.0.0.1:{port}",
            mode="instant",
            max_workers=workers,
            progress=False,
        )
    elapsed = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
    if peak_method.startswith("VmHWM"):
        peak = max(_status_bytes("VmHWM"), sampler.peak)
    else:
        peak = sampler.peak
    return {
        "rows": rows,
        "workers": workers,
        "frame_bytes": frame_bytes,
        "rss_before_frame": rss_before_frame,
        "rss_with_frame": rss_with_frame,
        "peak_rss": peak,
        "peak_method": peak_method,
        "elapsed_s": elapsed,
        "sent": int((results["status"] == "sent").sum()),
        "traced_peak": traced_peak,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the child side: send, then print one JSON line with the figures."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory",
        description="Child process of the memory benchmark; run measure_peak_memory() instead.",
    )
    parser.add_argument("--rows", type=int, required=True, help="rows to send")
    parser.add_argument("--workers", type=int, default=10, help="connections (default 10)")
    parser.add_argument("--port", type=int, required=True, help="sink port on 127.0.0.1")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace allocations")
    args = parser.parse_args(argv)
    report = _child(args.rows, args.workers, args.port, args.tracemalloc)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
