"""The journal file on its own: schema, durability, group commits and the lock."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mailkit.errors import JournalError, JournalLockedError
from mailkit.journal import Journal, lock_path, journal_results
from mailkit.results import RowResult

ROOT = Path(__file__).resolve().parent.parent


def _open(path: Path, key_spec: str = "column:id") -> Journal:
    return Journal.open(path, key_spec=key_spec)


def _mark(journal: Journal, key: str, message_id: str = "<m@example.com>") -> int:
    return journal.mark_sending(
        key,
        content_hash=f"hash-{key}",
        message_id=message_id,
        recipients=f"{key}@x.org",
    )


def _sent(label, message_id: str = "<m@example.com>") -> RowResult:
    now = datetime.now(timezone.utc)
    return RowResult(
        label=label,
        to="a@x.org",
        status="sent",
        smtp_code=250,
        smtp_reply="2.0.0 queued",
        message_id=message_id,
        attempts=1,
        started_at=now,
        finished_at=now,
    )


def _status_of(path: Path) -> dict[str, str]:
    frame = journal_results(path)
    return dict(zip(frame["key"], frame["status"].astype(str)))


def test_register_creates_pending_rows(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path) as journal:
        journal.register([("1", 0, "a@x.org"), ("2", 1, "b@x.org")])

    frame = journal_results(path)
    assert frame["key"].tolist() == ["1", "2"]
    assert frame.index.tolist() == [0, 1]
    assert frame["status"].astype(str).tolist() == ["skipped", "skipped"]
    assert frame["error"].str.contains("Not sent yet").all()
    assert frame["to"].tolist() == ["a@x.org", "b@x.org"]


def test_register_keeps_state_and_updates_label(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path) as journal:
        journal.register([("1", 0, "a@x.org")])
        _mark(journal, "1")
        journal.record_result("1", _sent(0))
    with _open(path) as journal:
        journal.register([("1", "moved", "a@x.org"), ("2", 7, "b@x.org")])

    frame = journal_results(path)
    assert frame.loc["moved", "status"] == "sent"
    assert frame.loc[7, "status"] == "skipped"


def test_labels_round_trip(tmp_path):
    path = tmp_path / "j.sqlite"
    labels = [3, "x", ("a", 2), np.int64(9), 2.5]
    with _open(path) as journal:
        journal.register([(str(i), label, "a@x.org") for i, label in enumerate(labels)])

    assert journal_results(path).index.tolist() == [3, "x", ("a", 2), 9, 2.5]


def test_mark_is_on_disk_before_it_returns(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = _open(path)
    journal.register([("1", 0, "a@x.org")])
    _mark(journal, "1", "<one@example.com>")

    # A separate connection reads only what was committed.
    frame = journal_results(path)
    assert frame.loc[0, "status"] == "unknown"
    assert frame.loc[0, "message_id"] == "<one@example.com>"
    assert frame.loc[0, "attempts"] == 1
    journal.close()


def test_results_are_queued_until_flush(tmp_path, monkeypatch):
    monkeypatch.setattr("mailkit.journal.FLUSH_INTERVAL_S", 3600.0)
    path = tmp_path / "j.sqlite"
    journal = _open(path)
    journal.register([("1", 0, "a@x.org")])
    _mark(journal, "1")
    journal.record_result("1", _sent(0))

    assert _status_of(path) == {"1": "unknown"}
    journal.flush()
    assert _status_of(path) == {"1": "sent"}
    journal.close()


def test_results_flush_after_many_rows(tmp_path, monkeypatch):
    monkeypatch.setattr("mailkit.journal.FLUSH_INTERVAL_S", 3600.0)
    monkeypatch.setattr("mailkit.journal.FLUSH_ROWS", 4)
    path = tmp_path / "j.sqlite"
    journal = _open(path)
    journal.register([(str(i), i, "a@x.org") for i in range(4)])
    for i in range(3):
        journal.record_result(str(i), RowResult(label=i, to="a@x.org", status="failed"))
    assert set(_status_of(path).values()) == {"skipped"}

    journal.record_result("3", RowResult(label=3, to="a@x.org", status="failed"))
    assert set(_status_of(path).values()) == {"failed"}
    journal.close()


def test_close_commits_queued_results(tmp_path, monkeypatch):
    monkeypatch.setattr("mailkit.journal.FLUSH_INTERVAL_S", 3600.0)
    path = tmp_path / "j.sqlite"
    journal = _open(path)
    journal.register([("1", 0, "a@x.org")])
    _mark(journal, "1")
    journal.record_result("1", _sent(0))
    journal.close()

    assert _status_of(path) == {"1": "sent"}
    with sqlite3.connect(path) as db:
        outcome = db.execute("SELECT outcome FROM runs").fetchone()[0]
    assert outcome == "finished"


def test_reply_before_hand_over_clears_mark(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path) as journal:
        journal.register([("1", 0, "a@x.org")])
        attempt = _mark(journal, "1")
        journal.record_reply(
            "1",
            attempt,
            status="deferred",
            smtp_code=451,
            smtp_reply="later",
            error="e",
            handed_over=False,
        )
        journal.flush()
        assert journal.handed_over_since(0) == (0, None)

    frame = journal_results(path)
    assert frame.loc[0, "status"] == "deferred"
    assert frame.loc[0, "smtp_code"] == 451


def test_reply_after_hand_over_counts(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path) as journal:
        journal.register([("1", 0, "a@x.org")])
        attempt = _mark(journal, "1")
        journal.record_reply(
            "1",
            attempt,
            status="sent",
            smtp_code=250,
            smtp_reply="queued",
            error="",
            handed_over=True,
        )
        journal.flush()
        count, _ = journal.handed_over_since(0)
        assert count == 1

    frame = journal_results(path)
    assert frame.loc[0, "status"] == "sent"
    assert frame.loc[0, "smtp_reply"] == "queued"
    assert pd.notna(frame.loc[0, "finished_at"])


def test_handed_over_since_counts_window(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path) as journal:
        journal.register([(str(i), i, "a@x.org") for i in range(3)])
        before = time.time()
        for key in ("0", "1", "2"):
            _mark(journal, key)
        count, oldest = journal.handed_over_since(before - 1)
        assert count == 3
        assert before - 1 <= oldest <= time.time()
        assert journal.handed_over_since(time.time() + 1) == (0, None)


def test_skipped_result_keeps_earlier_delivery(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path) as journal:
        journal.register([("1", 0, "a@x.org"), ("2", 1, "b@x.org")])
        _mark(journal, "1")
        journal.record_result("1", _sent(0))
        _mark(journal, "2")
    # The first run ended with row 2 at "sending"; the next run settles it.
    with _open(path) as journal:
        for key, label in (("1", 0), ("2", 1)):
            skipped = RowResult(label=label, to="a@x.org", status="skipped", error="x")
            journal.record_result(key, skipped)

    assert _status_of(path) == {"1": "sent", "2": "unknown"}


def test_skipped_result_keeps_own_delivery(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path) as journal:
        journal.register([("1", 0, "a@x.org")])
        attempt = _mark(journal, "1")
        journal.record_reply(
            "1",
            attempt,
            status="sent",
            smtp_code=250,
            smtp_reply="queued",
            error="",
            handed_over=True,
        )
        skipped = RowResult(label=0, to="a@x.org", status="skipped", error="x")
        journal.record_result("1", skipped)

    assert _status_of(path) == {"1": "sent"}


def test_own_mark_may_be_overwritten(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path) as journal:
        journal.register([("1", 0, "a@x.org")])
        _mark(journal, "1")
        journal.record_result("1", _sent(0))
    with _open(path) as journal:
        _mark(journal, "1", "<again@example.com>")
        failed = RowResult(label=0, to="a@x.org", status="failed", smtp_code=554)
        journal.record_result("1", failed)

    frame = journal_results(path)
    assert frame.loc[0, "status"] == "failed"
    assert frame.loc[0, "message_id"] == "<again@example.com>"
    assert frame.loc[0, "attempts"] == 2


def test_group_commit_shares_transactions(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = _open(path)
    keys = [str(i) for i in range(200)]
    journal.register([(key, key, "a@x.org") for key in keys])
    commits = []
    journal._db.set_trace_callback(
        lambda sql: commits.append(sql) if sql == "COMMIT" else None
    )

    def mark_all(part: list[str]) -> None:
        for key in part:
            _mark(journal, key)

    threads = [threading.Thread(target=mark_all, args=(keys[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    journal._db.set_trace_callback(None)
    journal.close()

    assert set(_status_of(path).values()) == {"unknown"}
    assert 1 <= len(commits) < len(keys)


class _FailingCommit:
    """Wraps a real sqlite3 connection and raises on the first COMMIT."""

    def __init__(self, db: sqlite3.Connection, error: BaseException) -> None:
        self._db = db
        self._error = error

    def execute(self, sql: str, *params):
        if sql == "COMMIT" and self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._db.execute(sql, *params)

    def __getattr__(self, name: str):
        return getattr(self._db, name)


def test_interrupted_commit_keeps_writes_queued(tmp_path, monkeypatch):
    monkeypatch.setattr("mailkit.journal.FLUSH_INTERVAL_S", 3600.0)
    path = tmp_path / "j.sqlite"
    journal = _open(path)
    journal.register([("1", 0, "a@x.org")])
    real = journal._db
    journal._db = _FailingCommit(real, KeyboardInterrupt())
    journal.record_result("1", RowResult(label=0, to="a@x.org", status="failed"))

    with pytest.raises(KeyboardInterrupt):
        journal.flush()
    assert not real.in_transaction
    assert _status_of(path) == {"1": "skipped"}

    journal._db = real
    journal.close()
    assert _status_of(path) == {"1": "failed"}


def test_close_releases_lock_when_commit_fails(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = _open(path)
    journal.register([("1", 0, "a@x.org")])
    journal.record_result("1", RowResult(label=0, to="a@x.org", status="failed"))
    failure = sqlite3.OperationalError("disk I/O error")
    journal._db = _FailingCommit(journal._db, failure)

    with pytest.raises(JournalError, match="disk I/O error") as caught:
        journal.close()
    assert "the batch stops" in str(caught.value)
    assert journal.closed
    with _open(path):
        pass


def test_closed_journal_rejects_writes(tmp_path):
    journal = _open(tmp_path / "j.sqlite")
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        _mark(journal, "1")
    with pytest.raises(JournalError, match="closed"):
        journal.record_result("1", _sent(0))


def test_second_open_in_process_is_locked(tmp_path):
    path = tmp_path / "j.sqlite"
    first = _open(path)
    with pytest.raises(JournalLockedError) as caught:
        _open(path)
    message = str(caught.value)
    assert f"process {os.getpid()}" in message
    assert "in use by another batch" in message
    first.close()
    with _open(path):
        pass


_HOLD_JOURNAL = textwrap.dedent(
    """
    import sys, time
    from mailkit.journal import Journal
    journal = Journal.open(sys.argv[1], key_spec="column:id")
    journal.register([("1", 0, "a@x.org"), ("2", 1, "b@x.org")])
    journal.mark_sending(
        "1", content_hash="h", message_id="<m@example.com>", recipients="a@x.org"
    )
    print("ready", flush=True)
    time.sleep(60)
    """
)


def _start_holder(path: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_JOURNAL, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout.readline().strip() == "ready"
    return child


@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
def test_killed_owner_releases_lock(tmp_path):
    path = tmp_path / "j.sqlite"
    child = _start_holder(path)
    try:
        with pytest.raises(JournalLockedError, match=f"process {child.pid}"):
            _open(path)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        child.stdout.close()

    with _open(path) as journal:
        records = journal.records(["1", "2"])
    assert records["1"].status == "unknown"
    assert f"process {child.pid}" in records["1"].error
    assert "may have been delivered" in records["1"].error
    assert records["2"].status == "pending"
    with sqlite3.connect(path) as db:
        query = "SELECT outcome FROM runs ORDER BY id"
        outcomes = [row[0] for row in db.execute(query)]
    assert outcomes == ["ended without closing the journal", "finished"]


def test_key_spec_must_match(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path, "column:id"):
        pass
    with pytest.raises(JournalError, match="column 'id'") as caught:
        _open(path, "recipients")
    assert "envelope recipients" in str(caught.value)
    with _open(path, "column:id"):
        pass


def test_rejects_file_that_is_not_a_journal(tmp_path):
    text_file = tmp_path / "notes.sqlite"
    text_file.write_text("hello, this is not a database\n" * 40)
    with pytest.raises(JournalError, match="not a mailkit journal"):
        _open(text_file)
    with pytest.raises(JournalError, match="not a mailkit journal"):
        journal_results(text_file)

    other_db = tmp_path / "other.sqlite"
    with sqlite3.connect(other_db) as db:
        db.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(JournalError, match="not a mailkit journal"):
        _open(other_db)
    with pytest.raises(JournalError, match="not a mailkit journal"):
        journal_results(other_db)


def test_rejects_other_schema_version(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(JournalError, match="version 99"):
        _open(path)


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(JournalError, match="does not exist"):
        _open(tmp_path / "no-such-folder" / "j.sqlite")


def test_journal_results_of_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No journal"):
        journal_results(tmp_path / "missing.sqlite")


def test_journal_results_while_batch_writes(tmp_path):
    path = tmp_path / "j.sqlite"
    with _open(path) as journal:
        journal.register([("1", 0, "a@x.org")])
        _mark(journal, "1")
        assert _status_of(path) == {"1": "unknown"}
    assert lock_path(path).exists()


def test_path_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with _open(Path("~/j.sqlite")) as journal:
        journal.register([("1", 0, "a@x.org")])
    assert (tmp_path / "j.sqlite").is_file()
    assert journal_results("~/j.sqlite")["key"].tolist() == ["1"]
