"""Progress bars: made and closed in the calling thread, full count, text fallback."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import threading

import pandas as pd
import pytest
import tqdm.std
from aiosmtpd.controller import Controller

import mailkit
from mailkit import barlog
from mailkit import progress as progress_module

SENDER = "Team <team@example.com>"


class RecordingBar(tqdm.std.tqdm):
    """A text bar that records its updates and the threads that touch it."""

    instances: list["RecordingBar"] = []

    def __init__(self, *args, **kwargs):
        kwargs["file"] = open("/dev/null", "w")  # noqa: SIM115 - closed in close()
        super().__init__(*args, **kwargs)
        self.updates: list[int] = []
        self.threads: set[str] = {threading.current_thread().name}
        self.closed_at_count: int | None = None
        RecordingBar.instances.append(self)

    def update(self, n=1):
        self.threads.add(threading.current_thread().name)
        self.updates.append(n)
        return super().update(n)

    def close(self):
        if self.closed_at_count is None:
            self.closed_at_count = self.n
        file = self.fp
        super().close()
        file.close()


class RejectingHandler:
    """Accepts everything but RCPT for the addresses in ``refused``."""

    def __init__(self, refused: set[str]):
        self.refused = refused
        self.received: list[tuple[str, ...]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(tuple(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def rejecting_server():
    handler = RejectingHandler({"user3@example.com", "user7@example.com", "user11@example.com"})
    controller = Controller(handler, hostname="127.0.0.1", port=0)
    # aiosmtpd's readiness check cannot use port 0, so bind first and read the port.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        controller.port = probe.getsockname()[1]
    controller.start()
    try:
        yield handler, f"smtp://127.0.0.1:{controller.port}"
    finally:
        controller.stop()


def _frame(count: int) -> pd.DataFrame:
    return pd.DataFrame({"email": [f"user{i}@example.com" for i in range(count)]})


def test_bar_reaches_total_with_failures(rejecting_server, monkeypatch):
    monkeypatch.delenv("MAILKIT_PROGRESS", raising=False)
    handler, url = rejecting_server
    RecordingBar.instances.clear()
    results = mailkit.send_bulk(
        _frame(20), subject="Hi", body="x", sender=SENDER, smtp=url, max_workers=4,
        progress=RecordingBar,
    )
    assert len(RecordingBar.instances) == 1
    bar = RecordingBar.instances[0]
    assert bar.total == 20
    assert sum(bar.updates) == 20
    assert bar.closed_at_count == 20
    assert bar.threads == {threading.current_thread().name}
    assert (results["status"] == "failed").sum() == 3
    assert len(handler.received) == 17


def test_rejected_recipient_fails_only_its_row(rejecting_server):
    handler, url = rejecting_server
    results = mailkit.send_bulk(_frame(12), subject="Hi", body="x", sender=SENDER, smtp=url)
    failed = results[results["status"] == "failed"]
    assert failed.index.tolist() == [3, 7, 11]
    assert failed["smtp_code"].tolist() == [550, 550, 550]
    assert all("No such user here" in reply for reply in failed["smtp_reply"])
    assert all("550" in error for error in failed["error"])
    assert (results.drop(index=[3, 7, 11])["status"] == "sent").all()
    assert sorted(r[0] for r in handler.received) == sorted(
        f"user{i}@example.com" for i in range(12) if i not in (3, 7, 11)
    )


def test_progress_false_creates_no_bar(server, monkeypatch):
    monkeypatch.delenv("MAILKIT_PROGRESS", raising=False)
    created = []
    monkeypatch.setattr(tqdm.std.tqdm, "__init__", lambda self, *a, **k: created.append(1))
    mailkit.send_bulk(_frame(3), subject="Hi", body="x", sender=SENDER, smtp=server.url,
                      progress=False)
    assert created == []


def test_text_progress_writes_to_stderr(server, monkeypatch, capsys):
    monkeypatch.delenv("MAILKIT_PROGRESS", raising=False)
    mailkit.send_bulk(_frame(5), subject="Hi", body="x", sender=SENDER, smtp=server.url,
                      progress="text")
    captured = capsys.readouterr()
    assert "5/5" in captured.err
    assert captured.out == ""


def test_missing_ipywidgets_falls_back_to_text(server, monkeypatch, capsys):
    monkeypatch.delenv("MAILKIT_PROGRESS", raising=False)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.setattr(progress_module, "_in_notebook_kernel", lambda: True)
    with pytest.warns(UserWarning, match="pip install ipywidgets"):
        results = mailkit.send_bulk(_frame(5), subject="Hi", body="x", sender=SENDER,
                                    smtp=server.url, progress="auto")
    assert (results["status"] == "sent").all()
    assert len(server.messages) == 5
    assert "5/5" in capsys.readouterr().err


def test_invalid_progress_option(server):
    with pytest.raises(ValueError, match="Invalid progress"):
        mailkit.send_bulk(_frame(1), subject="Hi", body="x", sender=SENDER,
                          smtp=server.url, progress="sparkles")
    assert server.sessions == 0


def test_send_bulk_inside_running_event_loop(server):
    async def caller():
        results = mailkit.send_bulk(_frame(3), subject="Hi", body="x", sender=SENDER,
                                    smtp=server.url)
        await asyncio.sleep(0)
        return results

    results = asyncio.run(caller())
    assert (results["status"] == "sent").all()
    assert len(server.messages) == 3


class EveryDrawBar(tqdm.std.tqdm):
    """A text bar on the current stderr that redraws on every update."""

    def __init__(self, *args, **kwargs):
        kwargs.update(file=sys.stderr, mininterval=0, miniters=1)
        super().__init__(*args, **kwargs)


@pytest.fixture
def odd_rows_refused_server():
    """A server that refuses the recipients of the odd rows of ``_frame``."""
    handler = RejectingHandler({f"user{i}@example.com" for i in range(1, 100, 2)})
    controller = Controller(handler, hostname="127.0.0.1", port=0)
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        controller.port = free.getsockname()[1]
    controller.start()
    try:
        yield handler, f"smtp://127.0.0.1:{controller.port}"
    finally:
        controller.stop()


_BAR_STATE = re.compile(r"(\d+)/(\d+) \[[^\]\r\n]*?((?:, \w+=\d+)+)\]")


def test_bar_postfix_counts_every_row(odd_rows_refused_server, monkeypatch, capsys):
    monkeypatch.delenv("MAILKIT_PROGRESS", raising=False)
    _, url = odd_rows_refused_server
    mailkit.send_bulk(
        _frame(12), subject="Hi", body="x", sender=SENDER, smtp=url, max_workers=3,
        progress=EveryDrawBar,
    )
    err = capsys.readouterr().err
    states = _BAR_STATE.findall(err)
    assert states, err
    for done, total, postfix in states:
        counts = [int(part.split("=")[1]) for part in postfix.strip(", ").split(", ")]
        assert sum(counts) == int(done), f"{done}/{total} shows {postfix.strip(', ')}"
    assert states[-1][0] == "12"


def _no_logging_configured(monkeypatch):
    # pytest attaches its capture handlers to the root logger; a fresh user's
    # session has none, so Python falls back to logging.lastResort.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    assert not logging.getLogger("mailkit").hasHandlers()


def test_row_warnings_print_above_bar(odd_rows_refused_server, monkeypatch, capsys):
    monkeypatch.delenv("MAILKIT_PROGRESS", raising=False)
    _no_logging_configured(monkeypatch)
    _, url = odd_rows_refused_server
    results = mailkit.send_bulk(
        _frame(30), subject="Hi", body="x", sender=SENDER, smtp=url, max_workers=3,
        progress=EveryDrawBar,
    )
    assert (results["status"] == "failed").sum() == 15
    err = capsys.readouterr().err
    warnings_shown = re.findall(r"(.?)row \d+ to user\d+@example\.com: failed", err)
    assert len(warnings_shown) == barlog.SHOWN_ROW_WARNINGS
    # Each warning starts a line of its own: the bar was cleared before it.
    assert set(warnings_shown) <= {"\r", "\n", ""}, err
    assert "... and 5 more row warning(s) not shown" in err
    assert "results DataFrame has the status and error of every row" in err
    assert logging.getLogger("mailkit").handlers == []


def test_configured_logging_gets_every_warning(
    odd_rows_refused_server, monkeypatch, capsys, caplog
):
    monkeypatch.delenv("MAILKIT_PROGRESS", raising=False)
    _, url = odd_rows_refused_server
    with caplog.at_level(logging.WARNING, logger="mailkit"):
        mailkit.send_bulk(
            _frame(30), subject="Hi", body="x", sender=SENDER, smtp=url,
            max_workers=3, progress=EveryDrawBar,
        )
    row_records = [r for r in caplog.records if hasattr(r, barlog.ROW_ATTRIBUTE)]
    assert len(row_records) == 15
    assert sorted(r.mailkit_row for r in row_records) == list(range(1, 30, 2))
    assert "more row warning(s) not shown" not in capsys.readouterr().err


def test_router_writes_other_threads_later(monkeypatch, capsys):
    _no_logging_configured(monkeypatch)
    router = barlog.BatchLogRouter()
    logger = logging.getLogger("mailkit.worker")
    try:
        thread = threading.Thread(
            target=lambda: logger.warning("from the worker"), name="mailkit-test-log"
        )
        thread.start()
        thread.join(5)
        assert "from the worker" not in capsys.readouterr().err
        logger.warning("from the caller")
        assert capsys.readouterr().err == "from the caller\n"
        router.write_held()
        assert capsys.readouterr().err == "from the worker\n"
    finally:
        router.remove()
    assert logging.getLogger("mailkit").handlers == []


def test_router_stays_out_when_logging_configured():
    handler = logging.NullHandler()
    logging.getLogger("mailkit").addHandler(handler)
    try:
        router = barlog.BatchLogRouter()
        assert not router.installed
        assert logging.getLogger("mailkit").handlers == [handler]
        router.remove()
    finally:
        logging.getLogger("mailkit").removeHandler(handler)


def test_cli_warnings_print_above_bar(odd_rows_refused_server, tmp_path):
    _, url = odd_rows_refused_server
    csv = tmp_path / "people.csv"
    csv.write_text(
        "email\n" + "".join(f"user{i}@example.com\n" for i in range(6)),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("MAILKIT_PROGRESS", None)
    done = subprocess.run(
        [sys.executable, "-m", "mailkit.cli", "send", str(csv), "--subject", "Hi",
         "--body", str(csv), "--sender", "me@example.com", "--smtp", url,
         "--mode", "fast"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == 1, done.stderr
    shown = re.findall(r"(.?)WARNING mailkit\.engine: row \d+ to", done.stderr)
    assert len(shown) == 3, done.stderr
    assert set(shown) <= {"\r", "\n", ""}, done.stderr
    assert "6/6" in done.stderr
