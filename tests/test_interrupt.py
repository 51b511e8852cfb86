"""KeyboardInterrupt in the middle of a threaded batch, as Ctrl-C or a kernel's
stop button raises it, with and without a journal.

``_thread.interrupt_main()`` raises KeyboardInterrupt in the thread that runs
the test, like a real Ctrl-C but without a signal, so the engine must notice it
between its waits.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter

import pandas as pd
import pytest
from scripted_smtp import ScriptedSMTPServer

import mailkit

SENDER = "Accounts team <accounts@example.com>"
ROWS = 30
WORKERS = 3
# The server's time per message, scaled down from half a second.
MESSAGE_S = 0.25


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(ROWS),
            "email": [f"user{i}@example.com" for i in range(ROWS)],
            "name": [f"Name {i}" for i in range(ROWS)],
        }
    )


def _send(server, journal, **options):
    return mailkit.send_bulk(
        _frame(),
        subject="Invoice for {{ name }}",
        body="Hello {{ name }}",
        sender=SENDER,
        smtp=server.url,
        journal=journal,
        key="id" if journal is not None else None,
        max_workers=WORKERS,
        **options,
    )


class _InterruptAfter:
    """Calls ``_thread.interrupt_main()`` once, when the n-th message is accepted."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.at: float | None = None

    def __call__(self, accepted: int) -> None:
        if accepted == self.count and self.at is None:
            self.at = time.monotonic()
            _thread.interrupt_main()


def _by_status(results: pd.DataFrame, status: str) -> set[str]:
    return set(results.loc[results["status"] == status, "to"])


def _check_journal_matches(journal, results: pd.DataFrame) -> None:
    stored = mailkit.journal_results(journal)
    stored_status = dict(zip(stored["to"], stored["status"].astype(str)))
    assert stored_status == dict(zip(results["to"], results["status"].astype(str)))


def _check_no_workers_alive() -> None:
    alive = [t for t in threading.enumerate() if t.name.startswith("mailkit-")]
    frames = sys._current_frames()
    stacks = {
        thread.name: "".join(traceback.format_stack(frames[thread.ident]))
        for thread in alive
        if thread.ident in frames
    }
    assert alive == [], stacks


@pytest.mark.parametrize("with_journal", [True, False], ids=["journal", "no-journal"])
def test_interrupt_mid_batch(tmp_path, with_journal):
    journal = tmp_path / "c.sqlite" if with_journal else None
    interrupt = _InterruptAfter(5)
    with ScriptedSMTPServer(delay=MESSAGE_S, on_accept=interrupt) as server:
        with pytest.raises(KeyboardInterrupt) as caught:
            _send(server, journal)
        _check_no_workers_alive()
        results = caught.value.results
        accepted = [message.recipients[0] for message in server.accepted]

        assert mailkit.last_results is results
        assert len(results) == ROWS
        assert results["status"].notna().all()
        assert set(results["status"].astype(str)) == {"sent", "skipped"}
        # Transactions already running finish; nothing new starts.
        assert _by_status(results, "sent") == set(accepted)
        assert 5 <= len(accepted) <= 5 + 2 * WORKERS
        late = [t for t in server.mail_times if t > interrupt.at + MESSAGE_S]
        assert late == []
        skipped = results.loc[results["status"] == "skipped", "error"]
        assert skipped.str.contains("interrupted").all()
        if journal is None:
            return
        _check_journal_matches(journal, results)

        rerun = _send(server, journal)

        assert _by_status(rerun, "skipped") == set(accepted)
        assert _by_status(rerun, "sent") == _by_status(results, "skipped")
        copies = Counter(message.recipients[0] for message in server.received)
        assert copies == Counter(_frame()["email"])


def test_second_interrupt_stops_at_once(tmp_path):
    journal = tmp_path / "c.sqlite"
    first = _InterruptAfter(3)
    # Every message after the third stalls, so the first interrupt would wait
    # for their replies until the command timeout.
    stalled = set(range(4, ROWS + 1))
    returned = threading.Event()

    def interrupt_again() -> None:
        if not returned.is_set():
            _thread.interrupt_main()

    with ScriptedSMTPServer(stall=stalled, on_accept=first) as server:
        timer = None
        try:
            with pytest.raises(KeyboardInterrupt) as caught:
                timer = threading.Timer(1.0, interrupt_again)
                server.on_accept = _chain(first, timer.start)
                _send(server, journal)
        finally:
            returned.set()
            if timer is not None:
                timer.cancel()
        ended = time.monotonic()
        _check_no_workers_alive()
        results = caught.value.results
        arrived = {message.recipients[0] for message in server.received}
        accepted = {message.recipients[0] for message in server.accepted}

        assert ended - first.at < 5.0
        assert mailkit.last_results is results
        assert results["status"].notna().all()
        assert _by_status(results, "sent") == accepted
        assert len(accepted) == 3
        # The stalled messages reached the server but got no reply.
        in_transit = arrived - accepted
        assert 1 <= len(in_transit) <= WORKERS
        assert in_transit <= _by_status(results, "unknown")
        unknown = results.loc[results["status"] == "unknown", "error"]
        assert unknown.str.contains("may have been delivered").all()
        skipped = results.loc[results["status"] == "skipped", "error"]
        assert skipped.str.contains("interrupted").all()
        assert len(skipped) >= ROWS - 3 - WORKERS
        _check_journal_matches(journal, results)

        server.release()
        rerun = _send(server, journal)

        assert _by_status(rerun, "sent") == _by_status(results, "skipped")
        assert _by_status(rerun, "unknown") == _by_status(results, "unknown")
        copies = Counter(message.recipients[0] for message in server.received)
        for address in _frame()["email"]:
            if address in in_transit:
                assert copies[address] == 1, address
            elif address in _by_status(results, "unknown"):
                assert copies[address] <= 1, address
            else:
                assert copies[address] == 1, address


def _chain(first, then):
    """Return an on_accept callback that runs ``first`` and, after the first
    interrupt, starts the timer ``then`` once."""
    started = []

    def on_accept(accepted: int) -> None:
        first(accepted)
        if first.at is not None and not started:
            started.append(True)
            then()

    return on_accept


@pytest.mark.skipif(os.name != "posix", reason="needs pthread_kill and SIGINT")
def test_interrupt_while_connecting(tmp_path):
    journal = tmp_path / "c.sqlite"
    main_thread = threading.main_thread().ident
    done = threading.Event()
    with ScriptedSMTPServer(stall_ehlo=True) as server:

        def interrupt_when_connected() -> None:
            # A real SIGINT, as Ctrl-C sends, also ends a blocking socket read.
            if server.ehlo_seen.wait(10) and not done.wait(0.2):
                signal.pthread_kill(main_thread, signal.SIGINT)

        watcher = threading.Thread(target=interrupt_when_connected)
        watcher.start()
        started = time.monotonic()
        try:
            with pytest.raises(KeyboardInterrupt) as caught:
                _send(server, journal)
        finally:
            done.set()
            watcher.join(10)
        assert time.monotonic() - started < 5.0
        results = caught.value.results
        assert mailkit.last_results is results
        assert (results["status"] == "skipped").all()
        assert results["error"].str.contains("interrupted").all()
        assert server.mail_times == []
        _check_journal_matches(journal, results)
