"""The composer builds each row once, ahead of the workers and within its bounds."""

from __future__ import annotations

import threading
import time
from collections import Counter

from mailkit.composer import Composer, RowEntry
from mailkit.results import RowResult


def _composer(calls: Counter, *, delay: float = 0.0, **bounds) -> Composer:
    lock = threading.Lock()

    def compose(position: int) -> RowEntry:
        with lock:
            calls[position] += 1
        time.sleep(delay)
        return RowEntry(outgoing=None, result=RowResult(position, "", "failed"))

    return Composer(compose, range(50), **bounds)


def test_composer_builds_each_row_once():
    calls: Counter = Counter()
    composer = _composer(calls, delay=0.001)
    thread = threading.Thread(target=composer.run, name="mailkit-composer-test")
    thread.start()
    taken: list[int] = []

    def take(positions) -> None:
        for position in positions:
            composer.get(position)
            composer.finished(position)
            taken.append(position)

    workers = [threading.Thread(target=take, args=(range(i, 50, 4),)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    composer.close()
    thread.join(10)

    assert sorted(taken) == list(range(50))
    assert set(calls) == set(range(50))
    assert max(calls.values()) == 1
    assert composer.entries == {}


def test_composer_stays_within_row_bound():
    calls: Counter = Counter()
    composer = _composer(calls, max_rows=5)
    thread = threading.Thread(target=composer.run, name="mailkit-composer-test")
    thread.start()
    deadline = time.monotonic() + 2
    while len(calls) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)

    assert len(calls) == 5
    composer.get(0)
    deadline = time.monotonic() + 2
    while len(calls) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(calls) == 6
    composer.close()
    thread.join(5)
    assert not thread.is_alive()


def test_composer_skips_finished_rows():
    calls: Counter = Counter()
    composer = _composer(calls, max_rows=100)
    composer.get(3)
    composer.finished(3)
    composer.finished(4)
    composer.run()

    assert calls[3] == 1
    assert calls[4] == 0
    assert set(calls) == set(range(50)) - {4}
