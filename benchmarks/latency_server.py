"""An SMTP server on 127.0.0.1 that replies with the latency of a distant mail provider.

:class:`LatencyServer` runs :class:`mailkit.testing.FaultSMTPServer` with the
per-command reply delays of a :class:`ProviderProfile`, multiplied by ``scale``
so that a run takes seconds instead of minutes. It offers STARTTLS with a real
TLS handshake (a throwaway test CA), asks for AUTH, advertises PIPELINING as the
profile says, and can cap concurrent sessions ("421 4.7.0") and logins per
minute ("454 4.7.0") like a real provider.

Profiles are JSON files in ``benchmarks/profiles/``. Each delay there carries the
reasoning behind its figure. A pipelined MAIL, RCPT and DATA group costs the
largest of the three delays, because the server replies to the group after one
wait (see the delay model of :mod:`mailkit.testing.fault_server`).

Example::

    with LatencyServer("gmail", scale=0.1) as server:
        results = mailkit.send_bulk(df, ..., smtp=server.smtp_config())
        bound = server.lower_bound(len(df), connections=10)

Run ``python -m benchmarks.latency_server --help`` to start one from a shell.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mailkit import SMTPConfig
from mailkit.testing.fault_server import FaultSMTPServer
from mailkit.testing.rules import DELAY_NAMES, Extensions

from .baselines import Endpoint
from .processes import stop_process

__all__ = [
    "DEFAULT_SCALE",
    "LatencyServer",
    "LatencyServerProcess",
    "ProviderProfile",
    "available_profiles",
    "load_profile",
]

logger = logging.getLogger(__name__)

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
#: The factor that the benchmarks apply to every profile delay by default.
DEFAULT_SCALE = 0.1
#: Seconds after which a server started here stops by itself.
DEFAULT_MAX_LIFETIME = 900.0
#: Login name that the benchmark clients use. The server accepts any password, so
#: no real secret is involved.
BENCH_USERNAME = "bench@example.com"
BENCH_PASSWORD = "not-a-secret"

_SETUP_STEPS = ("greeting", "ehlo", "starttls", "tls_handshake", "ehlo", "auth")
_MESSAGE_STEPS = ("mail", "rcpt", "data", "eod")


@dataclass(frozen=True)
class ProviderProfile:
    """Per-command reply delays (seconds, unscaled) and limits of one provider.

    ``sources`` maps each delay and limit name to the reasoning behind its figure.
    """

    name: str
    description: str
    status: str
    delays: Mapping[str, float]
    max_sessions: int | None = None
    logins_per_minute: int | None = None
    security: str = "starttls"
    auth: bool = True
    pipelining: bool = True
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.delays) - DELAY_NAMES)
        if unknown:
            raise ValueError(
                f"Profile {self.name!r} has unknown delay name(s) {unknown}; use "
                f"{sorted(DELAY_NAMES)}."
            )
        for name, seconds in self.delays.items():
            if not (isinstance(seconds, (int, float)) and math.isfinite(seconds)):
                raise ValueError(
                    f"Profile {self.name!r}: delay {name!r} is {seconds!r}; give a "
                    "finite number of seconds."
                )
            if seconds < 0:
                raise ValueError(
                    f"Profile {self.name!r}: delay {name!r} is {seconds!r}; give 0 or more."
                )
        if self.security not in ("starttls", "none"):
            raise ValueError(
                f"Profile {self.name!r}: security {self.security!r} is not supported; "
                "use 'starttls' or 'none'."
            )
        for name in ("max_sessions", "logins_per_minute"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(
                    f"Profile {self.name!r}: {name} is {value!r}; give a whole number "
                    "of 1 or more, or null for no limit."
                )

    def _delay(self, name: str) -> float:
        return float(self.delays.get(name, 0.0))

    def setup_time(self, scale: float = 1.0) -> float:
        """Return the seconds from connecting to a logged-in session."""
        steps = [step for step in _SETUP_STEPS if self._uses(step)]
        return sum(self._delay(step) for step in steps) * scale

    def _uses(self, step: str) -> bool:
        if step in ("starttls", "tls_handshake"):
            return self.security == "starttls"
        if step == "auth":
            return self.auth
        return True

    def message_time(self, scale: float = 1.0, *, pipelined: bool | None = None) -> float:
        """Return the seconds for one MAIL, RCPT, DATA and end-of-data exchange.

        ``pipelined`` defaults to whether the profile offers PIPELINING. A
        pipelined MAIL, RCPT and DATA cost the largest of their three delays.
        """
        if pipelined is None:
            pipelined = self.pipelining
        mail, rcpt, data, eod = (self._delay(step) for step in _MESSAGE_STEPS)
        envelope = max(mail, rcpt, data) if pipelined else mail + rcpt + data
        return (envelope + eod) * scale

    def quit_time(self, scale: float = 1.0) -> float:
        return self._delay("quit") * scale

    def lower_bound(
        self,
        messages: int,
        connections: int,
        scale: float = 1.0,
        *,
        pipelined: bool | None = None,
    ) -> float:
        """Return setup + ceil(messages / connections) x message time, in seconds.

        No design that opens at most ``connections`` sessions at once can send
        ``messages`` faster against this profile.
        """
        if messages < 0 or connections < 1:
            raise ValueError(
                f"Invalid lower bound request: {messages!r} messages over "
                f"{connections!r} connections."
            )
        if messages == 0:
            return 0.0
        rounds = math.ceil(messages / connections)
        return self.setup_time(scale) + rounds * self.message_time(scale, pipelined=pipelined)


def available_profiles() -> list[str]:
    """Return the names of the profiles shipped in ``benchmarks/profiles/``."""
    return sorted(path.stem for path in PROFILES_DIR.glob("*.json"))


def load_profile(name_or_path: str | Path) -> ProviderProfile:
    """Load a profile by name (``"gmail"``) or from a JSON file path.

    Raises ValueError for an unknown name or an invalid file.
    """
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = PROFILES_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ValueError(
                f"Unknown profile {name_or_path!r}: use one of "
                f"{', '.join(available_profiles())}, or the path of a JSON profile."
            )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"Cannot read the profile {path}: {exc}") from exc
    return _profile_from_document(document, path)


def _profile_from_document(document: Any, path: Path) -> ProviderProfile:
    if not isinstance(document, dict):
        raise ValueError(f"The profile {path} must contain a JSON object.")
    missing = [key for key in ("name", "description", "status", "delays") if key not in document]
    if missing:
        raise ValueError(f"The profile {path} is missing {', '.join(missing)}.")
    delays: dict[str, float] = {}
    sources: dict[str, str] = {}
    for name, entry in document["delays"].items():
        if not isinstance(entry, dict) or "seconds" not in entry:
            raise ValueError(
                f"The profile {path}: delay {name!r} must be an object with "
                '"seconds" and "source".'
            )
        delays[name] = entry["seconds"]
        sources[name] = entry.get("source", "")
    limits = document.get("limits", {})
    values: dict[str, int | None] = {}
    for name in ("max_sessions", "logins_per_minute"):
        entry = limits.get(name, {})
        values[name] = entry.get("value") if isinstance(entry, dict) else entry
        if isinstance(entry, dict) and entry.get("source"):
            sources[name] = entry["source"]
    return ProviderProfile(
        name=document["name"],
        description=document["description"],
        status=document["status"],
        delays=delays,
        max_sessions=values["max_sessions"],
        logins_per_minute=values["logins_per_minute"],
        security=document.get("security", "starttls"),
        auth=bool(document.get("auth", True)),
        pipelining=bool(document.get("pipelining", True)),
        sources=sources,
    )


class LatencyServer:
    """A :class:`FaultSMTPServer` that replies with a provider profile's delays.

    ``profile`` is a :class:`ProviderProfile`, a profile name or a JSON path.
    ``scale`` multiplies every delay. ``max_sessions`` and ``logins_per_minute``
    default to the profile's limits; pass 0 to turn a limit off. ``pipelining``
    overrides whether EHLO advertises PIPELINING. The server stops by itself
    after ``max_lifetime`` seconds.
    """

    def __init__(
        self,
        profile: ProviderProfile | str | Path = "gmail",
        *,
        scale: float = DEFAULT_SCALE,
        max_sessions: int | None = None,
        logins_per_minute: int | None = None,
        pipelining: bool | None = None,
        port: int = 0,
        max_lifetime: float = DEFAULT_MAX_LIFETIME,
    ) -> None:
        if not isinstance(profile, ProviderProfile):
            profile = load_profile(profile)
        if not (math.isfinite(scale) and scale >= 0):
            raise ValueError(f"Invalid scale {scale!r}: give a finite number of 0 or more.")
        if not (math.isfinite(max_lifetime) and max_lifetime > 0):
            raise ValueError(
                f"Invalid max_lifetime {max_lifetime!r}: give a finite number of seconds above 0."
            )
        self.profile = profile
        self.scale = float(scale)
        self.max_sessions = _limit(max_sessions, profile.max_sessions, "max_sessions")
        self.logins_per_minute = _limit(
            logins_per_minute, profile.logins_per_minute, "logins_per_minute"
        )
        self.pipelining = profile.pipelining if pipelining is None else pipelining
        self.max_lifetime = max_lifetime
        self._port = port
        self._server: FaultSMTPServer | None = None
        self._timer: threading.Timer | None = None
        self._stop_lock = threading.Lock()
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._cafile: str | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> LatencyServer:
        if self._server is not None:
            raise RuntimeError("The latency server is already running.")
        starttls = self.profile.security == "starttls"
        server = FaultSMTPServer(
            port=self._port,
            hostname="smtp.latency.test",
            delays=self.profile.delays,
            delay_scale=self.scale,
            extensions=Extensions(pipelining=self.pipelining),
            tls="starttls" if starttls else "none",
            require_tls_for_auth=starttls and self.profile.auth,
            auth_required=self.profile.auth,
            concurrent_session_limit=self.max_sessions,
            login_attempt_limit=self.logins_per_minute,
            login_window=60.0,
        )
        server.start()
        self._server = server
        if starttls:
            self._folder = tempfile.TemporaryDirectory(prefix="mailkit-latency-")
            path = Path(self._folder.name, "ca.pem")
            server.certificate.write_trust_anchor(path)  # type: ignore[union-attr]
            self._cafile = str(path)
        self._timer = threading.Timer(self.max_lifetime, self._expire)
        self._timer.daemon = True
        self._timer.start()
        logger.info(
            "latency server (%s profile, scale %g) listening on %s",
            self.profile.name,
            self.scale,
            server.url,
        )
        return self

    def _expire(self) -> None:
        logger.warning(
            "latency server stopped after its maximum lifetime of %g s", self.max_lifetime
        )
        self.stop()

    def stop(self) -> None:
        """Stop the server; safe to call twice and from the lifetime timer."""
        with self._stop_lock:
            if self._timer is not None and self._timer is not threading.current_thread():
                self._timer.cancel()
            self._timer = None
            if self._server is not None:
                self._server.stop()
                self._server = None
            if self._folder is not None:
                self._folder.cleanup()
                self._folder = None
                self._cafile = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> LatencyServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"port {self.port}" if self._server else "stopped"
        return f"LatencyServer({self.profile.name!r}, scale={self.scale:g}, {where})"

    # -- what clients need -------------------------------------------------------

    @property
    def server(self) -> FaultSMTPServer:
        """The running fault server, for its session records and counters."""
        if self._server is None:
            raise RuntimeError("The latency server is not running; call start() first.")
        return self._server

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def cafile(self) -> str | None:
        """Path of the test CA certificate that signs the server's certificate."""
        return self._cafile

    def ssl_context(self) -> ssl.SSLContext | None:
        """Return a client context that verifies the server against the test CA."""
        if self.profile.security != "starttls":
            return None
        return self.server.client_ssl_context()

    def endpoint(self) -> Endpoint:
        """Return connection settings for the hand-written benchmark clients."""
        starttls = self.profile.security == "starttls"
        return Endpoint(
            host=self.host,
            port=self.port,
            starttls=starttls,
            ssl_context=self.ssl_context(),
            cafile=self._cafile,
            username=BENCH_USERNAME if self.profile.auth else None,
            password=BENCH_PASSWORD if self.profile.auth else None,
        )

    def smtp_config(self) -> SMTPConfig:
        """Return the settings that ``mailkit.send_bulk(smtp=...)`` takes."""
        return self.endpoint().smtp_config()

    # -- expected times ----------------------------------------------------------

    def setup_time(self) -> float:
        return self.profile.setup_time(self.scale)

    def message_time(self, *, pipelined: bool | None = None) -> float:
        return self.profile.message_time(
            self.scale, pipelined=self.pipelining if pipelined is None else pipelined
        )

    def lower_bound(self, messages: int, connections: int) -> float:
        """Return the fastest possible time for ``messages`` over ``connections``."""
        return self.profile.lower_bound(
            messages, connections, self.scale, pipelined=self.pipelining
        )


def _limit(override: int | None, default: int | None, name: str) -> int | None:
    if override is None:
        return default
    if not isinstance(override, int) or override < 0:
        raise ValueError(f"Invalid {name} {override!r}: give a whole number, 0 for no limit.")
    return override or None


#: Seconds that a latency server process lives at most.
PROCESS_LIFETIME_S = 900.0
#: Seconds to wait for a latency server process to print its address.
_PROCESS_START_S = 30.0
#: Pause before a run against a server process, so that the sessions of the
#: previous run are closed on the server before the next one connects.
_PROCESS_SETTLE_S = 0.3
_URL = re.compile(r"smtp[a-z+]*://127\.0\.0\.1:(\d+)")
_CAFILE = re.compile(r"trust the test CA in (\S+)")


class LatencyServerProcess:
    """A latency server in a process of its own, as a real provider is.

    A :class:`LatencyServer` thread in the benchmark's process would compete
    with the clients' threads for the GIL. This runs ``python -m
    benchmarks.latency_server`` instead and reads its address and CA file from
    what it prints. ``max_sessions`` defaults to the profile's session cap; 0
    turns it off. The process stops by itself after ``lifetime`` seconds, and
    :meth:`stop` ends it earlier.
    """

    def __init__(
        self,
        profile: str = "gmail",
        *,
        scale: float = DEFAULT_SCALE,
        pipelining: bool = True,
        max_sessions: int | None = None,
        lifetime: float = PROCESS_LIFETIME_S,
    ) -> None:
        self.scale = scale
        self.profile = load_profile(profile)
        self.pipelining = pipelining
        self.max_sessions = _limit(max_sessions, self.profile.max_sessions, "max_sessions")
        command = [
            sys.executable,
            "-m",
            "benchmarks.latency_server",
            "--profile",
            profile,
            "--scale",
            str(scale),
            "--duration",
            str(lifetime),
        ]
        if not pipelining:
            command.append("--no-pipelining")
        if max_sessions is not None:
            command += ["--max-sessions", str(max_sessions)]
        self._command = command
        self._process: subprocess.Popen[str] | None = None
        self.port = 0
        self.cafile: str | None = None

    def __enter__(self) -> LatencyServerProcess:
        root = Path(__file__).resolve().parent.parent
        self._process = subprocess.Popen(
            self._command,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        deadline = time.monotonic() + _PROCESS_START_S
        assert self._process.stdout is not None
        # The server prints its address, login, CA file and timings at start
        # and then nothing until it stops.
        while time.monotonic() < deadline and not (self.port and self.cafile):
            line = self._process.stdout.readline()
            if not line or line.startswith("setup "):
                break
            if match := _URL.search(line):
                self.port = int(match.group(1))
            if match := _CAFILE.search(line):
                self.cafile = match.group(1)
        if not (self.port and self.cafile):
            self.stop()
            raise RuntimeError("The latency server process did not print its address.")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """End the process; it removes its CA file as it stops."""
        process = self._process
        if process is None:
            return
        stop_process(process, 10.0)
        if process.stdout is not None:
            process.stdout.close()
        self._process = None

    def endpoint(self) -> Endpoint:
        return Endpoint(
            host="127.0.0.1",
            port=self.port,
            starttls=True,
            ssl_context=ssl.create_default_context(cafile=self.cafile),
            cafile=self.cafile,
            username=BENCH_USERNAME,
            password=BENCH_PASSWORD,
        )

    def smtp_config(self) -> SMTPConfig:
        return self.endpoint().smtp_config()

    def setup_time(self) -> float:
        return self.profile.setup_time(self.scale)

    def message_time(self) -> float:
        return self.profile.message_time(self.scale, pipelined=self.pipelining)

    def lower_bound(self, messages: int, connections: int) -> float:
        return self.profile.lower_bound(
            messages, connections, self.scale, pipelined=self.pipelining
        )

    def settle(self) -> None:
        """Wait until the sessions of the previous run are closed on the server."""
        time.sleep(_PROCESS_SETTLE_S)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency_server",
        description="Run an SMTP server on 127.0.0.1 that replies with a provider's delays.",
    )
    parser.add_argument(
        "--profile",
        default="gmail",
        help=f"profile name ({', '.join(available_profiles())}) or JSON file (default gmail)",
    )
    parser.add_argument(
        "--scale", type=float, default=DEFAULT_SCALE, help="factor for every delay (default 0.1)"
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--max-sessions", type=int, help="concurrent sessions before 421 (0: no limit)"
    )
    parser.add_argument(
        "--logins-per-minute", type=int, help="AUTH commands per minute before 454 (0: no limit)"
    )
    parser.add_argument(
        "--duration", type=float, default=300.0, help="seconds until the server stops (default 300)"
    )
    parser.add_argument(
        "--no-pipelining",
        dest="pipelining",
        action="store_false",
        default=None,
        help="leave PIPELINING out of the EHLO reply (default: as the profile says)",
    )
    return parser.parse_args(argv)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run a latency server until ``--duration`` ends or Ctrl-C."""
    args = _parse_args(argv)
    server = LatencyServer(
        args.profile,
        scale=args.scale,
        port=args.port,
        max_sessions=args.max_sessions,
        logins_per_minute=args.logins_per_minute,
        pipelining=args.pipelining,
        max_lifetime=args.duration + 5.0,
    )
    # terminate() from the process that started this one ends the wait below
    # as Ctrl-C does, so that the server stops and its CA file is removed.
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return _serve(server, args.duration)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(server: LatencyServer, duration: float) -> int:
    with server:
        print(f"{server!r}: {server.server.url}", flush=True)
        print(f"login name {BENCH_USERNAME}; any password is accepted", flush=True)
        if server.cafile:
            print(f"trust the test CA in {server.cafile}", flush=True)
        print(
            f"setup {server.setup_time():.3f} s, one message {server.message_time():.3f} s",
            flush=True,
        )
        deadline = time.monotonic() + duration
        try:
            while time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        received = len(server.server.messages)
    print(f"stopped after {received} message(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
