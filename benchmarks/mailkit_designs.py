"""mailkit's own designs, timed the same way as the baselines.

- :func:`send_with_mailkit` runs ``send_bulk`` end to end: preflight, composing
  every row from the templates, sending, and building the results DataFrame.
- :func:`send_prebuilt_with_mailkit` sends prebuilt messages over a pool of
  mailkit transport connections (:class:`mailkit.transport.Connection`), one
  thread per connection. It measures mailkit's wire path without composing, so
  it is comparable with the baselines, which send the same prebuilt bytes.

Both raise :class:`IncompleteRunError` unless every message was accepted.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Sequence

import pandas as pd

import mailkit
from mailkit.compose import Outgoing
from mailkit.transport import SENT, Connection

from .baselines import Endpoint, RunResult
from .workload import TEMPLATES, Prebuilt

__all__ = ["IncompleteRunError", "send_prebuilt_with_mailkit", "send_with_mailkit"]


class IncompleteRunError(RuntimeError):
    """A benchmark run ended with messages that the server did not accept."""


def send_with_mailkit(
    endpoint: Endpoint,
    frame: pd.DataFrame,
    *,
    mode: str = "instant",
    workers: int = 10,
    design: str | None = None,
) -> RunResult:
    """Send one message per row of ``frame`` with ``send_bulk`` and time it.

    The time includes preflight, composing and the results DataFrame, because a
    user waits for all of them.
    """
    options = {"max_workers": workers} if mode == "instant" else {}
    if mode == "safe":
        options["delay"] = 0.0
    started = time.perf_counter()
    results = mailkit.send_bulk(
        frame,
        **TEMPLATES,
        smtp=endpoint.smtp_config(),
        mode=mode,
        progress=False,
        **options,
    )
    elapsed = time.perf_counter() - started
    _check_all_sent(results)
    connections = workers if mode == "instant" else 1
    return RunResult(design or f"mailkit {mode}", len(frame), connections, elapsed)


def _check_all_sent(results: pd.DataFrame) -> None:
    not_sent = results[results["status"] != "sent"]
    if len(not_sent):
        first = not_sent.iloc[0]
        raise IncompleteRunError(
            f"{len(not_sent)} of {len(results)} rows were not sent; the first, row "
            f"{not_sent.index[0]!r}, is {first['status']}: {first['error']}"
        )


def _outgoing(position: int, message: Prebuilt) -> Outgoing:
    return Outgoing(
        label=position,
        envelope_from=message.envelope_from,
        recipients=message.recipients,
        message_id="",
        data=message.data,
    )


def send_prebuilt_with_mailkit(
    endpoint: Endpoint,
    messages: Sequence[Prebuilt],
    connections: int = 10,
    *,
    design: str = "mailkit transport",
) -> RunResult:
    """Send prebuilt messages over ``connections`` reused mailkit connections."""
    config = endpoint.smtp_config()
    todo: queue.SimpleQueue[Outgoing] = queue.SimpleQueue()
    for position, message in enumerate(messages):
        todo.put(_outgoing(position, message))
    problems: list[str] = []

    def worker() -> None:
        connection = Connection(config, ssl_context=endpoint.ssl_context)
        try:
            connection.open()
            while not problems:
                try:
                    outgoing = todo.get_nowait()
                except queue.Empty:
                    break
                outcome = connection.send(outgoing)
                if outcome.status != SENT:
                    problems.append(f"{outcome.status}: {outcome.error}")
        except mailkit.MailkitError as exc:
            problems.append(str(exc))
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [
        threading.Thread(target=worker, name=f"bench-mailkit-{index}")
        for index in range(min(connections, len(messages)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if problems:
        raise IncompleteRunError(
            f"{len(problems)} message(s) were not sent; the first: {problems[0]}"
        )
    return RunResult(design, len(messages), connections, elapsed)
