"""Where the time of an end-to-end ``send_bulk`` goes.

Two views of the same workload against a loopback sink:

- stage timings: composing every row alone (one thread), preflight alone, the
  transport sending prebuilt messages alone, and the whole ``send_bulk``;
- a CPU profile of the whole ``send_bulk``: cProfile in every thread (the
  calling thread and each worker), timed with ``time.thread_time`` so that
  waiting for the network or for the GIL costs nothing, summed by component.

Python runs one thread's bytecode at a time, so the CPU seconds of all threads
add up to about the wall time of a CPU-bound run.
"""

from __future__ import annotations

import cProfile
import pstats
import threading
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

import mailkit
from mailkit.compose import MessagePlan

from .baselines import Endpoint
from .mailkit_designs import send_prebuilt_with_mailkit, send_with_mailkit
from .sinks import AiosmtpdSink, PostfixSink, postfix_tools
from .workload import TEMPLATES, prebuilt_messages, recipients_frame

__all__ = ["ProfileReport", "profile_end_to_end", "summarize"]

#: Components by the file a function lives in, first match wins.
_COMPONENTS = (
    ("templates (Jinja2)", ("/jinja2/", "/markupsafe/", "mailkit/templates.py")),
    ("building and serializing MIME (email package)", ("/email/",)),
    ("SMTP and sockets (smtplib, ssl, socket)", ("smtplib.py", "/ssl.py", "/socket.py")),
    ("mailkit engine, transport and results", ("/mailkit/",)),
    ("pandas", ("/pandas/",)),
    ("regular expressions (re)", ("/re/",)),
    ("queues and threads", ("/queue.py", "/threading.py")),
)
_BUILTIN_COMPONENTS = (
    ("SMTP and sockets (smtplib, ssl, socket)", ("_socket", "_ssl", "select")),
    ("queues and threads", ("_queue", "_thread", "lock")),
)


@dataclass
class ProfileReport:
    """Stage timings and the CPU profile of one end-to-end run."""

    rows: int
    workers: int
    sink: str
    stages: pd.DataFrame
    components: pd.DataFrame
    top_functions: pd.DataFrame
    cpu_s: float
    wall_s: float


def _component(filename: str, name: str) -> str:
    if filename == "~":
        for component, markers in _BUILTIN_COMPONENTS:
            if any(marker in name for marker in markers):
                return component
        return "other built-ins"
    for component, markers in _COMPONENTS:
        if any(marker in filename for marker in markers):
            return component
    return "other Python code"


class _ThreadProfiles:
    """cProfile in the calling thread and in every thread started meanwhile."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_in_thread(self, *_: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(profile)
        # enable() replaces this hook with the profiler for the new thread.
        profile.enable()

    def __enter__(self) -> _ThreadProfiles:
        threading.setprofile(self._start_in_thread)
        main = cProfile.Profile(time.thread_time)
        self.profiles.append(main)
        self._main = main
        main.enable()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            profile.create_stats()
            stats.add(profile)
        return stats


def _own_time_by_component(stats: pstats.Stats) -> list[dict[str, Any]]:
    """Return one record per function; a built-in's time goes to its callers.

    A built-in such as ``str.join`` is charged to the component of the code
    that called it, in proportion to the time spent in it from each caller.
    """
    table = stats.stats  # type: ignore[attr-defined]
    records = []
    for (filename, line, name), (_, calls, own_time, _, callers) in table.items():
        if filename != "~" or not callers:
            records.append(
                {
                    "component": _component(filename, name),
                    "function": f"{name} ({filename.rsplit('/', 1)[-1]}:{line})",
                    "calls": calls,
                    "own CPU s": own_time,
                }
            )
            continue
        from_callers = sum(entry[2] for entry in callers.values()) or 1.0
        for (caller_file, _, caller_name), entry in callers.items():
            records.append(
                {
                    "component": _component(caller_file, caller_name),
                    "function": f"{name} (called from {caller_name})",
                    "calls": entry[1],
                    "own CPU s": own_time * entry[2] / from_callers,
                }
            )
    return records


def _components(stats: pstats.Stats) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    frame = pd.DataFrame(_own_time_by_component(stats))
    total = float(frame["own CPU s"].sum())
    components = (
        frame.groupby("component")["own CPU s"].sum().sort_values(ascending=False).to_frame()
    )
    components["share"] = (components["own CPU s"] / total).map(lambda share: f"{share:.0%}")
    components["own CPU s"] = components["own CPU s"].round(3)
    top = frame.sort_values("own CPU s", ascending=False).head(15).reset_index(drop=True)
    top["own CPU s"] = top["own CPU s"].round(3)
    return components, top, total


def _stage_timings(endpoint: Endpoint, rows: int, workers: int) -> list[dict[str, Any]]:
    frame = recipients_frame(rows)
    plan = MessagePlan.build(
        subject=TEMPLATES["subject"],
        body=TEMPLATES["body"],
        html=TEMPLATES["html"],
        sender=TEMPLATES["sender"],
        to="email",
    )
    records = frame.to_dict("records")
    started = time.perf_counter()
    for position, record in enumerate(records):
        plan.compose(position, record)
    compose_s = time.perf_counter() - started

    started = time.perf_counter()
    mailkit.validate(frame, **TEMPLATES)
    preflight_s = time.perf_counter() - started

    transport = send_prebuilt_with_mailkit(endpoint, prebuilt_messages(rows), workers)
    return [
        {"stage": "compose every row (one thread)", "seconds": compose_s},
        {"stage": "preflight (validate)", "seconds": preflight_s},
        {
            "stage": f"send prebuilt messages (mailkit transport, {workers} connections)",
            "seconds": transport.elapsed_s,
        },
    ]


def profile_end_to_end(
    rows: int = 2000, *, workers: int = 10, sink: str = "smtp-sink"
) -> ProfileReport:
    """Time the stages of ``send_bulk`` and profile a whole run of ``rows`` rows."""
    if sink == "smtp-sink" and postfix_tools() is None:
        sink = "aiosmtpd"
    server = PostfixSink() if sink == "smtp-sink" else AiosmtpdSink()
    with server:
        endpoint = Endpoint(host="127.0.0.1", port=server.port)
        stages = _stage_timings(endpoint, rows, workers)
        frame = recipients_frame(rows)
        plain = send_with_mailkit(endpoint, frame, workers=workers)
        with _ThreadProfiles() as profiles:
            started = time.perf_counter()
            send_with_mailkit(endpoint, frame, workers=workers)
            profiled_wall = time.perf_counter() - started
    stages.append(
        {"stage": f"send_bulk end to end ({workers} workers)", "seconds": plain.elapsed_s}
    )
    stages_frame = pd.DataFrame(stages)
    stages_frame["messages per second"] = (rows / stages_frame["seconds"]).round(0)
    stages_frame["seconds"] = stages_frame["seconds"].round(3)
    components, top, cpu_s = _components(profiles.stats())
    return ProfileReport(
        rows=rows,
        workers=workers,
        sink=sink,
        stages=stages_frame.set_index("stage"),
        components=components,
        top_functions=top,
        cpu_s=cpu_s,
        wall_s=profiled_wall,
    )


def summarize(report: ProfileReport) -> str:
    """Return the report as text tables for a terminal."""
    return "\n".join(
        [
            f"Where the time goes: send_bulk, {report.rows} rows, {report.workers} workers, "
            f"{report.sink} on 127.0.0.1",
            "",
            report.stages.to_string(),
            "",
            f"CPU profile of one run (all threads): {report.cpu_s:.2f} CPU s in "
            f"{report.wall_s:.2f} s wall time under the profiler",
            report.components.to_string(),
            "",
            "Functions with the most own CPU time:",
            report.top_functions.to_string(),
        ]
    )
