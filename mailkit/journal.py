"""The journal: an SQLite file that records the state of each row of a batch.

For every row the journal stores its key, the hash of its rendered envelope and
content, its Message-ID and its state. A row is marked ``sending`` before its
message goes to the server and updated after the reply, so after a crash, a
kernel restart or an interrupt the file shows which rows were sent, which were
not, and which may have been delivered (``unknown``).

Durability. The ``sending`` mark is committed with ``synchronous=FULL`` (the WAL
is fsynced) before the caller may send the message, because a mark that could be
lost would let the next run send the row a second time. Replies and final
statuses are only queued. They are committed together with the next mark, or
when :data:`FLUSH_ROWS` of them are waiting or the oldest has waited
:data:`FLUSH_INTERVAL_S`, or at :meth:`Journal.close`. Losing queued statuses in
a crash leaves those rows at ``sending``, which the next run reports as
``unknown`` and does not send again, so grouping them costs precision but never
a second copy. Marks from several workers are grouped too: the thread that
commits takes every write queued so far into one transaction, and threads whose
writes it carried return without a commit of their own.

The engine writes the mark before MAIL FROM, so a crash between the mark and
the end of the message's content also leaves an ``unknown`` row, although the
server cannot have accepted that message.

One writer at a time. :meth:`Journal.open` takes an exclusive SQLite lock
(``BEGIN EXCLUSIVE``) on a companion file ``<journal>.lock`` and holds it until
:meth:`Journal.close`. SQLite takes that lock through the operating system
(``fcntl`` on POSIX, ``LockFileEx`` on Windows), which releases it when the
owning process ends in any way, SIGKILL included, so a dead batch never blocks
the next one. A second batch in another process, another kernel or the same
process gets :class:`~mailkit.errors.JournalLockedError` naming the owner.
Readers such as :func:`journal_results` need no lock: WAL mode lets them read
while a batch writes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Hashable, Iterable, Sequence

import pandas as pd

from .errors import JournalError, JournalLockedError
from .results import RowResult, build_results

__all__ = [
    "FLUSH_INTERVAL_S",
    "FLUSH_ROWS",
    "Journal",
    "JournalRecord",
    "lock_path",
    "journal_results",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "mailkit-journal"
SCHEMA_VERSION = 2

#: Queued final statuses are committed once this many are waiting, or once the
#: oldest has waited FLUSH_INTERVAL_S seconds (both checked on each write).
FLUSH_ROWS = 256
FLUSH_INTERVAL_S = 0.5

#: Seconds a connection waits for another connection's write lock on the journal
#: file itself. Only readers and a batch's own writes meet there, so waits are short.
_BUSY_TIMEOUT_S = 10.0

# Internal states besides the result statuses: "pending" means registered and
# never tried, "sending" means marked for hand-over with no reply recorded.
PENDING = "pending"
SENDING = "sending"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT
);
CREATE TABLE IF NOT EXISTS rows (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    label TEXT NOT NULL,
    recipients TEXT NOT NULL,
    status TEXT NOT NULL,
    content_hash TEXT,
    message_id TEXT,
    smtp_code INTEGER,
    smtp_reply TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    refused TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    run_id INTEGER,
    started_at TEXT,
    finished_at TEXT,
    sending_at TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sends (
    run_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    at REAL NOT NULL,
    handed_over INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (run_id, attempt)
) WITHOUT ROWID;
"""


def lock_path(path: str | os.PathLike) -> Path:
    """Return the companion file whose SQLite lock marks the journal as in use."""
    return Path(f"{os.fspath(path)}.lock")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def encode_label(label: Hashable) -> str:
    """Return the JSON text stored for an index label (tuples become lists)."""
    return json.dumps(_plain(label))


def decode_label(text: str) -> Hashable:
    value = json.loads(text)
    return tuple(value) if isinstance(value, list) else value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value else None
    return str(value)


@dataclass(frozen=True)
class JournalRecord:
    """One row's state as the journal stores it."""

    key: str
    label: Hashable
    recipients: str
    status: str
    content_hash: str | None
    message_id: str | None
    smtp_code: int | None
    smtp_reply: str
    error: str
    refused: str
    attempts: int
    started_at: str | None
    finished_at: str | None
    sending_at: str | None


_RECORD_COLUMNS = (
    "key, label, recipients, status, content_hash, message_id, smtp_code, "
    "smtp_reply, error, refused, attempts, started_at, finished_at, sending_at"
)


def _record(row: Sequence[Any]) -> JournalRecord:
    values = list(row)
    values[1] = decode_label(values[1])
    return JournalRecord(*values)


class _WriterLock:
    """An exclusive SQLite lock on ``<journal>.lock``, held while a batch runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another connection holds it."""
        db = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                return False
            raise JournalError(
                f"Cannot lock the journal through {self.path}: {exc}."
            ) from exc
        self._db = db
        return True

    def release(self) -> None:
        if self._db is None:
            return
        try:
            self._db.execute("ROLLBACK")
        finally:
            self._db.close()
            self._db = None


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(
        path,
        timeout=_BUSY_TIMEOUT_S,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        db.execute("PRAGMA busy_timeout = %d" % int(_BUSY_TIMEOUT_S * 1000))
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        db.close()
        raise JournalError(f"{path} is not a mailkit journal: {exc}.") from exc
    if mode.lower() != "wal":
        # NOTE: without WAL, readers block the batch and a reader can see the
        # journal locked; SQLite refuses WAL on some network file systems.
        logger.warning("journal %s runs in %s mode, not WAL", path, mode)
    db.execute("PRAGMA synchronous = FULL")
    return db


def _table_names(db: sqlite3.Connection) -> set[str]:
    query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {name for (name,) in db.execute(query)}


def _check_format(db: sqlite3.Connection, path: Path) -> None:
    tables = _table_names(db)
    if not tables:
        return
    if "meta" not in tables:
        raise JournalError(
            f"{path} is an SQLite database but not a mailkit journal; choose "
            "another file name for the journal."
        )
    meta = dict(db.execute("SELECT name, value FROM meta"))
    if meta.get("format") != FORMAT_NAME:
        raise JournalError(
            f"{path} is an SQLite database but not a mailkit journal; choose "
            "another file name for the journal."
        )
    version = int(meta.get("schema_version", "0"))
    if version != SCHEMA_VERSION:
        raise JournalError(
            f"The journal {path} has format version {version}, and this mailkit "
            f"reads version {SCHEMA_VERSION}; use the mailkit version that wrote it."
        )


class Journal:
    """The writing side of a journal file, owned by one batch at a time.

    Open it with :meth:`open` and close it with :meth:`close` (or use it as a
    context manager). Methods may be called from any thread.
    """

    def __init__(
        self, path: Path, db: sqlite3.Connection, lock: _WriterLock, run_id: int
    ) -> None:
        self.path = path
        self.run_id = run_id
        self._db = db
        self._lock = lock
        self._closed = False
        # Queued writes: (write number, SQL, parameters).
        self._pending: list[tuple[int, str, tuple[Any, ...]]] = []
        self._pending_since: float | None = None
        self._queued = 0
        self._durable = 0
        self._attempts = 0
        self._pending_mutex = threading.Lock()
        self._commit_mutex = threading.Lock()

    # -- opening and closing ------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, *, key_spec: str) -> Journal:
        """Open or create the journal at ``path`` for one batch.

        ``key_spec`` names how rows are identified (for example ``column:id`` or
        ``recipients``). A journal keeps the spec it was created with, because
        keys made another way would not match and every row would be sent again.

        Raises JournalLockedError when another batch holds the journal, and
        JournalError when the file is not a journal or was made with another
        ``key_spec``.
        """
        path = Path(path).expanduser()
        if not path.parent.exists():
            raise JournalError(
                f"Cannot create the journal {path}: the folder {path.parent} "
                "does not exist."
            )
        lock = _WriterLock(lock_path(path))
        if not lock.acquire():
            raise JournalLockedError(_locked_message(path))
        try:
            db = _connect(path)
            try:
                run_id = _start_run(db, path, key_spec)
            except BaseException:
                db.close()
                raise
        except BaseException:
            lock.release()
            raise
        logger.info("journal %s opened for run %d", path, run_id)
        return cls(path, db, lock, run_id)

    def close(self, outcome: str = "finished") -> None:
        """Commit every queued write, record how the run ended and release the lock.

        The lock is released and the file closed even when the commit fails or
        is interrupted. What was not committed is then lost, which leaves the
        rows it concerned at ``sending`` (read as ``unknown``) or ``pending``.
        """
        if self._closed:
            return
        try:
            self.flush()
            self._execute_now(
                "UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?",
                (_iso(_utc_now()), outcome, self.run_id),
            )
        finally:
            self._closed = True
            try:
                self._db.close()
            finally:
                self._lock.release()
            logger.info("journal %s closed; run %d %s", self.path, self.run_id, outcome)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type | None, *rest: object) -> None:
        self.close("finished" if exc_type is None else "ended by an exception")

    @property
    def closed(self) -> bool:
        return self._closed

    # -- reading --------------------------------------------------------------------

    def records(self, keys: Iterable[str]) -> dict[str, JournalRecord]:
        """Return the stored state of each of ``keys`` that the journal has."""
        self.flush()
        requested = list(dict.fromkeys(keys))
        found: dict[str, JournalRecord] = {}
        # SQLite limits the number of host parameters in one statement.
        chunk = 500
        with self._commit_mutex:
            for start in range(0, len(requested), chunk):
                part = requested[start : start + chunk]
                marks = ", ".join("?" * len(part))
                query = f"SELECT {_RECORD_COLUMNS} FROM rows WHERE key IN ({marks})"
                for row in self._db.execute(query, part):
                    record = _record(row)
                    found[record.key] = record
        return found

    def handed_over_since(self, cutoff: float) -> tuple[int, float | None]:
        """Count messages handed over (or possibly handed over) since ``cutoff``.

        ``cutoff`` is a Unix time. Returns the count and the Unix time of the
        oldest of them, or None when there are none.
        """
        self.flush()
        with self._commit_mutex:
            count, oldest = self._db.execute(
                "SELECT COUNT(*), MIN(at) FROM sends WHERE at >= ? AND handed_over = 1",
                (cutoff,),
            ).fetchone()
        return int(count), oldest

    # -- writing --------------------------------------------------------------------

    def register(self, rows: Iterable[tuple[str, Hashable, str]]) -> None:
        """Add rows as ``pending`` and store the current index label of known keys.

        ``rows`` contains ``(key, label, recipients)`` tuples. Committed at once.
        """
        self._check_open()
        params = [
            (key, encode_label(label), recipients) for key, label, recipients in rows
        ]
        self.flush()
        with self._commit_mutex:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (next_seq,) = self._db.execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM rows"
                ).fetchone()
                self._db.executemany(
                    "INSERT INTO rows (key, seq, label, recipients, status) "
                    "VALUES (?, ?, ?, ?, 'pending') "
                    "ON CONFLICT (key) DO UPDATE SET label = excluded.label",
                    [
                        (key, next_seq + number, label, recipients)
                        for number, (key, label, recipients) in enumerate(params)
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._write_error(exc) from exc
                raise

    def mark_sending(
        self, key: str, *, content_hash: str, message_id: str, recipients: str
    ) -> int:
        """Record that the row's message is about to be handed to the server.

        Returns only once the mark is committed to disk, so the caller may then
        send. The return value identifies this attempt for :meth:`record_reply`.
        """
        self._check_open()
        now = _utc_now()
        with self._pending_mutex:
            self._attempts += 1
            attempt = self._attempts
        seq = self._queue(
            [
                (
                    "INSERT INTO sends (run_id, attempt, key, message_id, "
                    "content_hash, at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        self.run_id,
                        attempt,
                        key,
                        message_id,
                        content_hash,
                        now.timestamp(),
                    ),
                ),
                (
                    "UPDATE rows SET status = 'sending', content_hash = ?, "
                    "message_id = ?, recipients = ?, attempts = attempts + 1, "
                    "started_at = CASE WHEN run_id IS ? THEN started_at ELSE ? END, "
                    "run_id = ?, sending_at = ?, finished_at = NULL, smtp_code = NULL, "
                    "smtp_reply = '', error = '', refused = '' WHERE key = ?",
                    (
                        content_hash,
                        message_id,
                        recipients,
                        self.run_id,
                        _iso(now),
                        self.run_id,
                        _iso(now),
                        key,
                    ),
                ),
            ]
        )
        try:
            self._commit_through(seq)
        except BaseException:
            # The caller does not send the message, so the mark must not reach
            # the file with a later commit.
            self._unqueue(seq)
            raise
        return attempt

    def record_reply(
        self,
        key: str,
        attempt: int,
        *,
        status: str,
        smtp_code: int | None,
        smtp_reply: str,
        error: str,
        handed_over: bool,
        refused: str = "",
    ) -> None:
        """Queue the outcome of one attempt, so that the row leaves ``sending``.

        The worker calls this before it marks its next row, so that mark's
        commit takes the outcome along. An attempt that ended before the
        message was handed over no longer counts toward a daily quota.
        """
        self._check_open()
        statements = [
            (
                "UPDATE rows SET status = ?, smtp_code = ?, smtp_reply = ?, "
                "error = ?, refused = ?, finished_at = ? WHERE key = ? AND "
                "status = 'sending' AND run_id = ?",
                (
                    status,
                    smtp_code,
                    smtp_reply,
                    error,
                    refused,
                    _iso(_utc_now()),
                    key,
                    self.run_id,
                ),
            )
        ]
        if not handed_over:
            statements.append(
                (
                    "UPDATE sends SET handed_over = 0 WHERE run_id = ? AND attempt = ?",
                    (self.run_id, attempt),
                )
            )
        self._queue(statements)
        self._maybe_flush()

    def record_result(self, key: str, result: RowResult) -> None:
        """Queue the final result of a row for this run.

        A row that was sent, or may have been, keeps that state unless this run
        marked it ``sending`` itself and the result is not ``skipped``: a
        ``skipped`` result never hides a delivery.
        """
        self._check_open()
        record = result.as_record()
        self._queue(
            [
                (
                    "UPDATE rows SET status = ?, smtp_code = ?, smtp_reply = ?, "
                    "error = ?, message_id = COALESCE(NULLIF(?, ''), message_id), "
                    "refused = ?, started_at = COALESCE(?, started_at), "
                    "finished_at = ?, run_id = ? WHERE key = ? AND (status NOT IN "
                    "('sent', 'partial', 'unknown', 'sending') OR (run_id = ? AND "
                    "? != 'skipped'))",
                    (
                        result.status,
                        result.smtp_code,
                        result.smtp_reply,
                        result.error,
                        result.message_id,
                        record["refused"],
                        _iso(result.started_at),
                        _iso(result.finished_at or _utc_now()),
                        self.run_id,
                        key,
                        self.run_id,
                        result.status,
                    ),
                )
            ]
        )
        self._maybe_flush()

    def flush(self) -> None:
        """Commit every queued write."""
        with self._pending_mutex:
            seq = self._queued
        self._commit_through(seq)

    # -- group commit ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError(f"The journal {self.path} is closed.")

    def _queue(self, statements: list[tuple[str, tuple[Any, ...]]]) -> int:
        with self._pending_mutex:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._queued += 1
            seq = self._queued
            self._pending.extend((seq, sql, params) for sql, params in statements)
            return seq

    def _unqueue(self, seq: int) -> None:
        """Drop the queued statements of write number ``seq``."""
        with self._pending_mutex:
            self._pending = [entry for entry in self._pending if entry[0] != seq]

    def _maybe_flush(self) -> None:
        with self._pending_mutex:
            waiting = len(self._pending)
            since = self._pending_since
        if not waiting:
            return
        age = time.monotonic() - (since or 0.0)
        if waiting >= FLUSH_ROWS or age >= FLUSH_INTERVAL_S:
            self.flush()

    def _commit_through(self, seq: int) -> None:
        """Commit queued writes until write number ``seq`` is on disk.

        The thread that takes the commit mutex commits everything queued so
        far, so the threads waiting behind it usually find their own write
        already done.
        """
        with self._commit_mutex:
            if self._durable >= seq:
                return
            with self._pending_mutex:
                batch = self._pending
                last = self._queued
                self._pending = []
                self._pending_since = None
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for _, sql, params in batch:
                    self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                with self._pending_mutex:
                    self._pending[:0] = batch
                    if self._pending_since is None:
                        self._pending_since = time.monotonic()
                if isinstance(exc, sqlite3.Error):
                    raise self._write_error(exc) from exc
                raise
            self._durable = last

    def _write_error(self, exc: sqlite3.Error) -> JournalError:
        logger.error("writing the journal %s failed: %s", self.path, exc)
        return JournalError(
            f"Writing the journal {self.path} failed: {exc}. No message goes out "
            "without its record, so the batch stops; free disk space or fix the "
            "file's permissions, then run the same call again."
        )

    def _execute_now(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._commit_mutex:
            self._db.execute(sql, params)


def _start_run(db: sqlite3.Connection, path: Path, key_spec: str) -> int:
    """Create the schema if needed, settle what a dead run left, and add a run.

    Called with the writer lock held, so no other batch is using the file.
    """
    _check_format(db, path)
    now = _iso(_utc_now())
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.executemany(
            "INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)",
            [
                ("format", FORMAT_NAME),
                ("schema_version", str(SCHEMA_VERSION)),
                ("key", key_spec),
                ("created_at", now),
            ],
        )
        stored = db.execute("SELECT value FROM meta WHERE name = 'key'").fetchone()[0]
        if stored != key_spec:
            raise JournalError(_key_mismatch_message(path, stored, key_spec))
        _settle_dead_runs(db, now)
        cursor = db.execute(
            "INSERT INTO runs (pid, host, started_at) VALUES (?, ?, ?)",
            (os.getpid(), socket.gethostname(), now),
        )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return int(cursor.lastrowid)


def _settle_dead_runs(db: sqlite3.Connection, now: str | None) -> None:
    """Turn rows a dead run left at ``sending`` into ``unknown`` and close its run."""
    dead = db.execute(
        "SELECT id, pid, host, started_at FROM runs WHERE finished_at IS NULL"
    ).fetchall()
    for run_id, pid, host, started_at in dead:
        count = db.execute(
            "UPDATE rows SET status = 'unknown', error = ?, finished_at = ? "
            "WHERE status = 'sending' AND run_id = ?",
            (
                f"The run that sent this message (process {pid} on {host}, started "
                f"{started_at}) ended before the server's reply was recorded, so it "
                "may have been delivered; it is not sent again automatically.",
                now,
                run_id,
            ),
        ).rowcount
        db.execute(
            "UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?",
            (now, "ended without closing the journal", run_id),
        )
        logger.warning(
            "journal run %d (process %s on %s) ended without closing the journal; "
            "%d row(s) it was sending are now unknown",
            run_id,
            pid,
            host,
            count,
        )


def _key_mismatch_message(path: Path, stored: str, requested: str) -> str:
    return (
        f"The journal {path} identifies rows by {_describe_key(stored)}, but this "
        f"run identifies them by {_describe_key(requested)}. Pass the same key= as "
        "the run that created the journal, or use a new journal file; with other "
        "keys every row would look new and be sent again."
    )


def _describe_key(spec: str) -> str:
    if spec.startswith("column:"):
        return f"the column {spec.partition(':')[2]!r} (key={spec.partition(':')[2]!r})"
    return "their envelope recipients (no key=)"


def _locked_message(path: Path) -> str:
    owner = _current_owner(path)
    return (
        f"The journal {path} is in use by another batch{owner}. Wait until it "
        "finishes or stop it: two batches on one journal could send the same rows "
        "twice."
    )


def _current_owner(path: Path) -> str:
    if not path.exists():
        return ""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute(
                "SELECT pid, host, started_at FROM runs WHERE finished_at IS NULL "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return ""
    if row is None:
        return ""
    pid, host, started_at = row
    return f" (process {pid} on {host}, started {started_at})"


# -- reading a journal without a batch ---------------------------------------------


def journal_results(path: str | os.PathLike) -> pd.DataFrame:
    """Return the results DataFrame of every row recorded in the journal at ``path``.

    Reads the file only; it works while a batch is writing it and after a
    crash. The index contains each row's index label from the last run that saw it,
    and the ``key`` column the row's key. Rows never tried show as ``skipped``;
    rows marked ``sending`` with no recorded reply show as ``unknown``, because
    their message may have been delivered. ``attempts`` counts transactions
    started for the row over all runs.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No journal at {path}.")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise JournalError(f"Cannot open the journal {path}: {exc}.") from exc
    try:
        _check_format(db, path)
        if "rows" not in _table_names(db):
            raise JournalError(
                f"{path} is an empty SQLite file, not a mailkit journal."
            )
        records = [
            _record(row)
            for row in db.execute(f"SELECT {_RECORD_COLUMNS} FROM rows ORDER BY seq")
        ]
        runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path} is not a mailkit journal: {exc}.") from exc
    finally:
        db.close()
    results = [_as_result(record) for record in records]
    index = pd.Index([record.label for record in records], tupleize_cols=False)
    frame = build_results(index, results, attrs={"journal": str(path), "runs": runs})
    frame["refused"] = [record.refused for record in records]
    frame["key"] = [record.key for record in records]
    return frame


def _as_result(record: JournalRecord) -> RowResult:
    status = record.status
    error = record.error
    if status == PENDING:
        status = "skipped"
        error = "Not sent yet: no run has tried this row."
    elif status == SENDING:
        status = "unknown"
        error = (
            "The message was being handed to the server when the journal was last "
            "written and no reply is recorded, so it may have been delivered."
        )
    return RowResult(
        label=record.label,
        to=record.recipients,
        status=status,
        smtp_code=record.smtp_code,
        smtp_reply=record.smtp_reply,
        error=error,
        message_id=record.message_id or "",
        attempts=record.attempts,
        started_at=_parse_time(record.started_at),
        finished_at=_parse_time(record.finished_at),
    )


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
