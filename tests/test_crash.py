"""A sending process killed with SIGKILL, then the same batch run again.

The batch runs in a subprocess against a recording server that lives in the
test process, so the server outlives the kill and counts every copy that
arrived. The second run uses the same journal in the test process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from scripted_smtp import ScriptedSMTPServer

import mailkit

# SIGKILL exists on POSIX systems only.
pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")

ROOT = Path(__file__).resolve().parent.parent
SENDER = "Accounts team <accounts@example.com>"
ROWS = 12

_CHILD = textwrap.dedent(
    """
    import sys
    import pandas as pd
    import mailkit

    journal, url, rows, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    df = pd.DataFrame(
        {
            "id": range(rows),
            "email": [f"user{i}@example.com" for i in range(rows)],
            "name": [f"Name {i}" for i in range(rows)],
        }
    )
    mailkit.send_bulk(
        df,
        subject="Invoice for {{ name }}",
        body="Hello {{ name }}",
        sender="Accounts team <accounts@example.com>",
        smtp=url,
        journal=journal,
        key="id",
        mode=mode,
        max_workers=3,
        progress=False,
    )
    """
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(ROWS),
            "email": [f"user{i}@example.com" for i in range(ROWS)],
            "name": [f"Name {i}" for i in range(ROWS)],
        }
    )


def _send_again(server, journal, **options):
    return mailkit.send_bulk(
        _frame(),
        subject="Invoice for {{ name }}",
        body="Hello {{ name }}",
        sender=SENDER,
        smtp=server.url,
        journal=journal,
        key="id",
        max_workers=3,
        **options,
    )


def _start_child(journal: Path, url: str, mode: str = "instant") -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MAILKIT_PROGRESS="0")
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(journal), url, str(ROWS), mode],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill(child: subprocess.Popen) -> None:
    assert child.poll() is None, "the batch ended before the test killed it"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    child.stderr.close()


def _check_once(server, journal, rerun) -> pd.DataFrame:
    """Assert that every row has a status, rows not unknown arrived exactly once
    and unknown rows at most once, and the journal agrees with the server."""
    assert rerun["status"].notna().all()
    assert set(rerun["status"].astype(str)) <= {"sent", "skipped", "unknown"}
    stored = mailkit.journal_results(journal)
    assert len(stored) == ROWS
    statuses = dict(zip(stored["to"], stored["status"].astype(str)))
    assert set(statuses.values()) <= {"sent", "unknown"}, statuses

    copies = Counter(message.recipients[0] for message in server.received)
    for address, status in statuses.items():
        if status == "unknown":
            assert copies[address] <= 1, address
        else:
            assert copies[address] == 1, address

    ids_by_address = dict(zip(stored["to"], stored["message_id"]))
    for message in server.accepted:
        address = message.recipients[0]
        if statuses[address] == "sent":
            assert message.message_id == ids_by_address[address]
    return stored


def test_kill_before_any_send(tmp_path):
    journal = tmp_path / "c.sqlite"
    with ScriptedSMTPServer(stall_ehlo=True) as server:
        child = _start_child(journal, server.url)
        assert server.ehlo_seen.wait(30), "the batch never connected"
        _kill(child)
        server.stall_ehlo = False
        server.release()
        assert server.mail_times == []
        before = mailkit.journal_results(journal)
        assert (before["status"] == "skipped").all()

        rerun = _send_again(server, journal)

        assert (rerun["status"] == "sent").all()
        stored = _check_once(server, journal, rerun)
    assert (stored["status"] == "sent").all()


def test_kill_mid_batch(tmp_path):
    journal = tmp_path / "c.sqlite"
    with ScriptedSMTPServer(delay=0.05) as server:
        child = _start_child(journal, server.url)
        server.wait_for_received(5, timeout=30)
        _kill(child)
        arrived = {message.recipients[0] for message in server.received}
        assert 5 <= len(arrived) < ROWS

        rerun = _send_again(server, journal)

        stored = _check_once(server, journal, rerun)
        newly_sent = set(rerun.loc[rerun["status"] == "sent", "to"])
        unknown = set(rerun.loc[rerun["status"] == "unknown", "to"])
        assert newly_sent.isdisjoint(arrived)
        assert newly_sent.isdisjoint(unknown)
        # A row marked "sending" whose content had not arrived yet is unknown too:
        # the mark is written before MAIL FROM.
        assert newly_sent | arrived | unknown == set(_frame()["email"])
    assert (stored["status"] == "sent").sum() >= ROWS - len(arrived | unknown)


def test_kill_during_stalled_data(tmp_path):
    journal = tmp_path / "c.sqlite"
    with ScriptedSMTPServer(stall={4}) as server:
        child = _start_child(journal, server.url, mode="fast")
        assert server.stalled.wait(30), "the fourth message never arrived"
        _kill(child)
        server.release()
        stalled = server.received[3].recipients[0]

        rerun = _send_again(server, journal)

        stored = _check_once(server, journal, rerun)
        row = rerun.index[rerun["to"] == stalled][0]
        assert rerun.loc[row, "status"] == "unknown"
        assert "retry_unknown=True" in rerun.loc[row, "error"]
        assert (rerun.loc[: row - 1, "status"] == "skipped").all()
        assert (rerun.loc[row + 1 :, "status"] == "sent").all()
        assert Counter(m.recipients[0] for m in server.received)[stalled] == 1

        # Sending it again is the user's decision, with the same Message-ID.
        again = _send_again(server, journal, retry_unknown=True)
        copies = [m for m in server.received if m.recipients[0] == stalled]
    assert again.loc[row, "status"] == "sent"
    assert len(copies) == 2
    assert copies[0].message_id == copies[1].message_id
    assert stored.loc[row, "message_id"] == copies[0].message_id


def test_second_process_sends_nothing(tmp_path):
    journal = tmp_path / "c.sqlite"
    with ScriptedSMTPServer(stall={1}) as server:
        child = _start_child(journal, server.url, mode="fast")
        try:
            assert server.stalled.wait(30), "the first batch never sent"
            with pytest.raises(mailkit.JournalLockedError) as caught:
                _send_again(server, journal)
            assert f"process {child.pid}" in str(caught.value)
            assert len(server.mail_times) == 1
        finally:
            server.release()
            assert child.wait(30) == 0, child.stderr.read().decode()
            child.stderr.close()
        assert len(server.accepted) == ROWS

        rerun = _send_again(server, journal)

        assert (rerun["status"] == "skipped").all()
        assert len(server.received) == ROWS
        _check_once(server, journal, rerun)
