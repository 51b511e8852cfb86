"""Loopback SMTP sinks and Postfix's load generator, for throughput benchmarks.

- :class:`PostfixSink` runs Postfix's ``smtp-sink``, a C server that accepts and
  discards mail as fast as the machine allows.
- :class:`AiosmtpdSink` is an aiosmtpd server whose handler only counts
  messages; it shows what a Python server costs.
- :func:`run_smtp_source` runs Postfix's ``smtp-source``, the C client that gives
  the ceiling for this machine.

Both Postfix programs come with Debian's ``postfix`` package (``.ci/system-packages``
installs it). Every process started here listens on or connects to 127.0.0.1
only, and runs under ``timeout`` so that it ends by itself even if Python dies.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from .processes import stop_process
from .workload import Prebuilt

__all__ = [
    "AiosmtpdSink",
    "PostfixNotInstalled",
    "PostfixSink",
    "SourceResult",
    "postfix_tools",
    "run_smtp_source",
]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Folders where Debian installs smtp-sink and smtp-source.
POSTFIX_DIRS = ("/usr/sbin", "/usr/lib/postfix/sbin")
#: Seconds after which a sink started here ends by itself.
DEFAULT_MAX_LIFETIME = 900.0
_READY_TIMEOUT = 10.0


class PostfixNotInstalled(RuntimeError):
    """smtp-sink or smtp-source is not installed."""


def _find_program(name: str) -> str | None:
    for folder in POSTFIX_DIRS:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def postfix_tools() -> dict[str, str] | None:
    """Return the paths of smtp-sink and smtp-source, or None if either is missing."""
    sink = _find_program("smtp-sink")
    source = _find_program("smtp-source")
    if sink is None or source is None:
        return None
    return {"smtp-sink": sink, "smtp-source": source}


def _require_postfix() -> dict[str, str]:
    tools = postfix_tools()
    if tools is None:
        raise PostfixNotInstalled(
            "smtp-sink and smtp-source were not found in /usr/sbin or on PATH: install "
            "Debian's postfix package (run .ci/system-packages as root)."
        )
    return tools


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"smtp-sink exited with status {process.returncode} before listening "
                f"on {HOST}:{port}."
            )
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as probe:
                probe.recv(512)
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"smtp-sink did not listen on {HOST}:{port} within {_READY_TIMEOUT:g} s.")


class PostfixSink:
    """Postfix's ``smtp-sink`` on 127.0.0.1, started and stopped by this object.

    It advertises PIPELINING, accepts every message and keeps none. Use it as a
    context manager. Run as root, it drops privileges to ``nobody``, which
    smtp-sink requires.
    """

    def __init__(
        self, *, backlog: int = 256, max_lifetime: float = DEFAULT_MAX_LIFETIME
    ) -> None:
        self.backlog = backlog
        self.max_lifetime = max_lifetime
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("The sink is not running; call start() first.")
        return f"smtp://{HOST}:{self.port}"

    def start(self) -> PostfixSink:
        if self._process is not None:
            raise RuntimeError("The sink is already running.")
        tools = _require_postfix()
        port = _free_port()
        command = ["timeout", f"{self.max_lifetime:g}", tools["smtp-sink"]]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]
        command += [f"{HOST}:{port}", str(self.backlog)]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_until_listening(port, process)
        except BaseException:
            _stop_process(process)
            raise
        self._process = process
        self.port = port
        logger.info("smtp-sink (pid %d) listening on %s:%d", process.pid, HOST, port)
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        _stop_process(self._process)
        logger.info("smtp-sink (pid %d) stopped", self._process.pid)
        self._process = None
        self.port = None

    def __enter__(self) -> PostfixSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    # The process is `timeout`, which passes SIGTERM on to smtp-sink and exits.
    stop_process(process, 5.0)


@dataclass(frozen=True)
class SourceResult:
    """One timed smtp-source run."""

    design: str
    messages: int
    connections: int
    elapsed_s: float

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_smtp_source(
    port: int,
    message: Prebuilt,
    *,
    count: int,
    sessions: int = 10,
    reuse_sessions: bool = True,
    timeout: float = 300.0,
) -> SourceResult:
    """Send ``count`` copies of ``message`` to 127.0.0.1:``port`` with smtp-source.

    ``reuse_sessions`` passes ``-d`` (many messages per session); without it each
    message gets a new session. The time includes starting the process, a few
    milliseconds. Raises RuntimeError when smtp-source fails.
    """
    tools = _require_postfix()
    with tempfile.TemporaryDirectory(prefix="mailkit-bench-") as folder:
        # smtp-source -F sends a file's lines, adding CRLF and dot-stuffing itself.
        path = Path(folder, "message.txt")
        path.write_bytes(message.data.replace(b"\r\n", b"\n"))
        command = [
            "timeout",
            f"{timeout:g}",
            tools["smtp-source"],
            "-s",
            str(sessions),
            "-m",
            str(count),
            "-F",
            str(path),
            "-M",
            "localhost",
            "-f",
            message.envelope_from,
            "-t",
            message.recipients[0],
        ]
        if reuse_sessions:
            command.append("-d")
        command.append(f"{HOST}:{port}")
        started = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, timeout=timeout + 10)
        elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"smtp-source failed with status {completed.returncode}: "
            f"{completed.stderr.decode(errors='replace').strip()}"
        )
    design = "smtp-source -d" if reuse_sessions else "smtp-source"
    return SourceResult(f"{design} -s {sessions}", count, sessions, elapsed)


class _CountingHandler:
    def __init__(self, sink: AiosmtpdSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self._sink._count()
        return "250 2.0.0 OK"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        # Bound to port 0: the readiness check must connect to the real port.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class AiosmtpdSink:
    """An aiosmtpd server on 127.0.0.1 that accepts and discards every message.

    ``received`` counts the accepted messages. Use it as a context manager.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self._controller: _Controller | None = None

    def _count(self) -> None:
        with self._lock:
            self.received += 1

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("The sink is not running; call start() first.")
        return self._controller.port

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self.port}"

    def start(self) -> AiosmtpdSink:
        controller = _Controller(
            _CountingHandler(self),
            hostname=HOST,
            port=0,
            ready_timeout=_READY_TIMEOUT,
            data_size_limit=0,
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> AiosmtpdSink:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def sink_names() -> Sequence[str]:
    """Return the sinks available on this machine, Postfix's first."""
    return ("smtp-sink", "aiosmtpd") if postfix_tools() else ("aiosmtpd",)
