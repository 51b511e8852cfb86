"""Hand-written reference senders that mailkit is measured against.

Each one is the plain, honest way to write that design with the standard library
(or aiosmtplib), sending the same prebuilt messages as every other design:

- :func:`send_sequential`: a new connection, TLS and login for every message;
- :func:`send_one_connection`: one connection reused for every message (the
  "raw smtplib loop");
- :func:`send_thread_pool`: ``ThreadPoolExecutor`` with one new connection per
  message, the usual "instant" recipe;
- :func:`send_smtplib_pool`: a pool of threads, each reusing its own connection;
- :func:`send_aiosmtplib`: the same pool as coroutines with aiosmtplib.

They raise on the first refused message: a benchmark run must deliver everything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import smtplib
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from mailkit import SMTPConfig

from .workload import Prebuilt

__all__ = [
    "DESIGNS",
    "Endpoint",
    "RunResult",
    "send_aiosmtplib",
    "send_one_connection",
    "send_sequential",
    "send_smtplib_pool",
    "send_thread_pool",
]

#: Seconds that every client waits for a reply before giving up.
TIMEOUT = 30.0
#: Seconds that the aiosmtplib baseline waits for each socket to close after QUIT.
_CLOSE_WAIT_S = 5.0


@dataclass(frozen=True)
class Endpoint:
    """Where the benchmark clients connect: always a server on this machine.

    ``starttls`` upgrades each connection with ``ssl_context``; a ``username``
    makes each connection log in with AUTH. The password is kept out of ``repr``.
    """

    host: str
    port: int
    starttls: bool = False
    ssl_context: ssl.SSLContext | None = dataclasses.field(default=None, repr=False)
    cafile: str | None = None
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.starttls and self.ssl_context is None:
            raise ValueError("An Endpoint with starttls=True needs an ssl_context.")

    def smtp_config(self) -> SMTPConfig:
        """Return the same server as mailkit settings."""
        return SMTPConfig(
            host=self.host,
            port=self.port,
            security="starttls" if self.starttls else "none",
            username=self.username,
            password=self.password,
            cafile=self.cafile,
            timeout=TIMEOUT,
        )


@dataclass(frozen=True)
class RunResult:
    """One timed run of one design."""

    design: str
    messages: int
    connections: int
    elapsed_s: float

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0


def open_smtplib(endpoint: Endpoint) -> smtplib.SMTP:
    """Connect, say EHLO, start TLS and log in as the endpoint says."""
    smtp = smtplib.SMTP(endpoint.host, endpoint.port, timeout=TIMEOUT)
    try:
        smtp.ehlo()
        if endpoint.starttls:
            smtp.starttls(context=endpoint.ssl_context)
            smtp.ehlo()
        if endpoint.username:
            smtp.login(endpoint.username, endpoint.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _send(smtp: smtplib.SMTP, message: Prebuilt) -> None:
    refused = smtp.sendmail(message.envelope_from, list(message.recipients), message.data)
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)


def _send_with_new_connection(endpoint: Endpoint, message: Prebuilt) -> None:
    smtp = open_smtplib(endpoint)
    try:
        _send(smtp, message)
    finally:
        smtp.quit()


def _timed(design: str, connections: int, messages: Sequence[Prebuilt], run: Callable[[], None]) -> RunResult:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    return RunResult(design, len(messages), connections, elapsed)


def send_sequential(endpoint: Endpoint, messages: Sequence[Prebuilt]) -> RunResult:
    """Send each message over a new connection, one after the other."""

    def run() -> None:
        for message in messages:
            _send_with_new_connection(endpoint, message)

    return _timed("sequential", 1, messages, run)


def send_one_connection(endpoint: Endpoint, messages: Sequence[Prebuilt]) -> RunResult:
    """Send every message over one connection, one after the other."""

    def run() -> None:
        smtp = open_smtplib(endpoint)
        try:
            for message in messages:
                _send(smtp, message)
        finally:
            smtp.quit()

    return _timed("one connection", 1, messages, run)


def send_thread_pool(
    endpoint: Endpoint, messages: Sequence[Prebuilt], threads: int = 10
) -> RunResult:
    """Send with ``ThreadPoolExecutor(threads)``, a new connection per message."""

    def run() -> None:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [
                pool.submit(_send_with_new_connection, endpoint, message)
                for message in messages
            ]
            for future in futures:
                future.result()

    return _timed("thread pool", threads, messages, run)


def send_smtplib_pool(
    endpoint: Endpoint, messages: Sequence[Prebuilt], connections: int = 10
) -> RunResult:
    """Send with ``connections`` threads, each reusing its own smtplib connection."""
    errors: list[BaseException] = []

    def worker(todo: queue.SimpleQueue[Prebuilt]) -> None:
        try:
            smtp = open_smtplib(endpoint)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            errors.append(exc)
            return
        try:
            while not errors:
                try:
                    message = todo.get_nowait()
                except queue.Empty:
                    break
                _send(smtp, message)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            errors.append(exc)
        finally:
            smtp.quit()

    def run() -> None:
        todo: queue.SimpleQueue[Prebuilt] = queue.SimpleQueue()
        for message in messages:
            todo.put(message)
        workers = [
            threading.Thread(target=worker, args=(todo,), name=f"bench-smtplib-{index}")
            for index in range(min(connections, len(messages)))
        ]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        if errors:
            raise errors[0]

    return _timed("smtplib pool", connections, messages, run)


async def _aiosmtplib_run(
    endpoint: Endpoint, messages: Sequence[Prebuilt], connections: int
) -> None:
    import aiosmtplib

    todo: asyncio.Queue[Prebuilt] = asyncio.Queue()
    for message in messages:
        todo.put_nowait(message)

    async def worker() -> None:
        client = aiosmtplib.SMTP(
            hostname=endpoint.host,
            port=endpoint.port,
            timeout=TIMEOUT,
            start_tls=endpoint.starttls,
            use_tls=False,
            tls_context=endpoint.ssl_context,
        )
        await client.connect()
        # The socket closes only after the TLS shutdown that quit() starts, so
        # it is kept here for the run to wait for before the loop ends.
        sock = client.get_transport_info("socket")
        try:
            if endpoint.username:
                await client.login(endpoint.username, endpoint.password or "")
            while not todo.empty():
                message = todo.get_nowait()
                refused, _ = await client.sendmail(
                    message.envelope_from, list(message.recipients), message.data
                )
                if refused:
                    raise aiosmtplib.SMTPRecipientsRefused(list(refused.values()))
        finally:
            await client.quit()
            await _socket_closed(sock)

    await asyncio.gather(*(worker() for _ in range(min(connections, len(messages)))))


async def _socket_closed(sock: Any, timeout: float = _CLOSE_WAIT_S) -> None:
    """Wait until asyncio closed ``sock`` after the TLS shutdown, at most ``timeout``.

    A loop that ends while the shutdown still waits for the server's
    close_notify leaves the socket open, and Python warns about it later.
    """
    deadline = time.monotonic() + timeout
    while sock.fileno() != -1 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


def send_aiosmtplib(
    endpoint: Endpoint, messages: Sequence[Prebuilt], connections: int = 10
) -> RunResult:
    """Send with aiosmtplib over ``connections`` reused connections.

    The event loop runs on a thread of its own, so this also works inside a
    Jupyter kernel, whose main thread already runs a loop.
    """
    errors: list[BaseException] = []

    def loop_thread() -> None:
        try:
            asyncio.run(_aiosmtplib_run(endpoint, messages, connections))
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            errors.append(exc)

    def run() -> None:
        thread = threading.Thread(target=loop_thread, name="bench-aiosmtplib")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]

    return _timed("aiosmtplib", connections, messages, run)


#: The reference designs by name, as the command line and notebooks select them.
DESIGNS: dict[str, Callable[..., RunResult]] = {
    "sequential": send_sequential,
    "one connection": send_one_connection,
    "thread pool": send_thread_pool,
    "smtplib pool": send_smtplib_pool,
    "aiosmtplib": send_aiosmtplib,
}
