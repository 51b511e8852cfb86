"""send_bulk(journal=...): resuming, row keys, changed input, unknown rows, quotas."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections import Counter
from dataclasses import replace

import pandas as pd
import pytest
from scripted_smtp import ScriptedSMTPServer

import mailkit
from mailkit.resume import content_hash, key_text

SENDER = "Accounts team <accounts@example.com>"


def _frame(ids, name: str = "Ann") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": list(ids),
            "email": [f"user{i}@example.com" for i in ids],
            "name": [f"{name} {i}" for i in ids],
        }
    )


def _send(df, server, journal, **options):
    return mailkit.send_bulk(
        df,
        subject="Invoice for {{ name }}",
        body="Hello {{ name }},\nyour invoice is attached.\n",
        html="<p>Hello {{ name }}</p>",
        sender=SENDER,
        smtp=server.url,
        journal=journal,
        **options,
    )


def _counts(server) -> Counter:
    return Counter(rcpt for message in server.messages for rcpt in message.recipients)


def _statuses(results) -> list[str]:
    return results["status"].astype(str).tolist()


def test_second_run_sends_nothing(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(6))
    first = _send(df, server, journal, key="id")
    assert _statuses(first) == ["sent"] * 6

    sessions = server.sessions

    second = _send(df, server, journal, key="id")

    assert _statuses(second) == ["skipped"] * 6
    assert second["error"].str.startswith("Not sent again").all()
    assert second["message_id"].tolist() == first["message_id"].tolist()
    assert second.attrs["journal"] == str(journal)
    assert first.attrs["already_sent"] == 0
    assert second.attrs["already_sent"] == 6
    assert len(server.messages) == 6
    assert server.sessions == sessions


def test_shuffled_extended_sheet_sends_new_rows(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    _send(_frame(range(5)), server, journal, key="id")
    # The user joined a status column in and cleared it; templates do not use it.
    bigger = _frame(range(8))
    bigger["status"] = ""
    shuffled = bigger.sample(frac=1, random_state=7).reset_index(drop=True)

    results = _send(shuffled, server, journal, key="id")

    new_rows = shuffled["id"] >= 5
    assert (results.loc[new_rows, "status"] == "sent").all()
    assert (results.loc[~new_rows, "status"] == "skipped").all()
    assert not results["error"].str.contains("changed").any()
    assert _counts(server) == Counter(f"user{i}@example.com" for i in range(8))


def test_key_defaults_to_recipients(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(4))
    _send(df, server, journal)
    # Case and order of the recipient addresses do not change the key.
    reordered = df.iloc[::-1].reset_index(drop=True)
    reordered["email"] = reordered["email"].str.upper()
    extended = pd.concat([reordered, _frame([9])], ignore_index=True)

    results = _send(extended, server, journal)

    assert _statuses(results) == ["skipped"] * 4 + ["sent"]
    assert _counts(server)["user9@example.com"] == 1
    assert len(server.messages) == 5


def test_numeric_keys_match_across_types(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    _send(_frame([1, 2, 3]), server, journal, key="id")
    as_text = _frame([1, 2, 3])
    as_text["id"] = ["1", "2.0", "003"]

    results = _send(as_text, server, journal, key="id")

    assert _statuses(results) == ["skipped"] * 3
    assert len(server.messages) == 3


def test_changed_sent_row_is_reported(server, tmp_path, caplog):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(3))
    _send(df, server, journal, key="id")
    edited = df.copy()
    edited.loc[1, "name"] = "Someone else"

    with caplog.at_level(logging.WARNING, logger="mailkit"):
        results = _send(edited, server, journal, key="id")

    assert _statuses(results) == ["skipped"] * 3
    assert "changed" in results.loc[1, "error"]
    assert "new journal" in results.loc[1, "error"]
    assert "changed" not in results.loc[0, "error"]
    messages = [record.getMessage() for record in caplog.records]
    warnings = [message for message in messages if "changed since" in message]
    assert len(warnings) == 1
    assert "1 row(s)" in warnings[0]
    assert len(server.messages) == 3


def test_changed_template_is_reported(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(2))
    _send(df, server, journal, key="id")

    results = mailkit.send_bulk(
        df,
        subject="A new subject for {{ name }}",
        body="Hello {{ name }},\nyour invoice is attached.\n",
        html="<p>Hello {{ name }}</p>",
        sender=SENDER,
        smtp=server.url,
        journal=journal,
        key="id",
    )

    assert results["error"].str.contains("changed").all()
    assert len(server.messages) == 2


def test_refused_row_is_sent_next_run(tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(3))
    refused = {"user1@example.com": "550 5.1.1 no such user"}
    with ScriptedSMTPServer(refuse=refused) as server:
        first = _send(df, server, journal, key="id")
    assert _statuses(first) == ["sent", "failed", "sent"]
    stored = mailkit.journal_results(journal)
    assert _statuses(stored) == ["sent", "failed", "sent"]
    assert stored["smtp_code"].tolist() == [250, 550, 250]

    fixed = df.copy()
    fixed.loc[1, "email"] = "user1-new@example.com"
    with ScriptedSMTPServer() as server:
        second = _send(fixed, server, journal, key="id")
        assert [m.recipients for m in server.accepted] == [("user1-new@example.com",)]
    assert _statuses(second) == ["skipped", "sent", "skipped"]
    assert mailkit.journal_results(journal).loc[1, "to"] == "user1-new@example.com"


def test_deferred_row_is_sent_next_run(tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(2))
    busy = {"user0@example.com": "451 4.7.1 try again later"}
    with ScriptedSMTPServer(refuse=busy) as server:
        first = _send(df, server, journal, key="id", max_retries=0)
    assert _statuses(first) == ["deferred", "sent"]
    assert _statuses(mailkit.journal_results(journal)) == ["deferred", "sent"]

    with ScriptedSMTPServer() as server:
        second = _send(df, server, journal, key="id")
        assert [m.recipients for m in server.accepted] == [("user0@example.com",)]
    assert _statuses(second) == ["sent", "skipped"]


def _drop_user(number: int):
    def drop(received) -> bool:
        return received.recipients == (f"user{number}@example.com",)

    return drop


def test_unknown_row_is_not_sent_again(tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(3))
    with ScriptedSMTPServer(drop=_drop_user(1)) as server:
        first = _send(df, server, journal, key="id", mode="fast")
    assert _statuses(first) == ["sent", "unknown", "sent"]
    assert _statuses(mailkit.journal_results(journal)) == ["sent", "unknown", "sent"]

    with ScriptedSMTPServer() as server:
        second = _send(df, server, journal, key="id")
        assert server.received == []
    assert _statuses(second) == ["skipped", "unknown", "skipped"]
    assert "retry_unknown=True" in second.loc[1, "error"]
    assert second.loc[1, "message_id"] == first.loc[1, "message_id"]


def test_retry_unknown_reuses_message_id(tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(3))
    with ScriptedSMTPServer(drop=_drop_user(2)) as server:
        first = _send(df, server, journal, key="id", mode="fast")
        dropped = server.received[2]
    assert first.loc[2, "status"] == "unknown"

    with ScriptedSMTPServer() as server:
        second = _send(df, server, journal, key="id", retry_unknown=True)
        resent = server.accepted

    assert _statuses(second) == ["skipped", "skipped", "sent"]
    assert len(resent) == 1
    assert resent[0].recipients == ("user2@example.com",)
    assert resent[0].message_id == dropped.message_id == first.loc[2, "message_id"]
    assert second.loc[2, "message_id"] == first.loc[2, "message_id"]
    stored = mailkit.journal_results(journal)
    assert stored.loc[2, "status"] == "sent"
    assert stored.loc[2, "attempts"] == 2


def test_retry_unknown_skips_changed_row(tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(2))
    with ScriptedSMTPServer(drop=_drop_user(0)) as server:
        _send(df, server, journal, key="id", mode="fast")
    edited = df.copy()
    edited.loc[0, "name"] = "Changed"

    with ScriptedSMTPServer() as server:
        results = _send(edited, server, journal, key="id", retry_unknown=True)
        assert server.received == []

    assert _statuses(results) == ["unknown", "skipped"]
    assert "changed" in results.loc[0, "error"]
    assert "same Message-ID" in results.loc[0, "error"]


def test_journal_results_match_run(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(4))
    df.index = pd.Index(["a", "b", "c", "d"], name="row")
    results = _send(df, server, journal, key="id")

    stored = mailkit.journal_results(journal)

    assert stored.index.tolist() == ["a", "b", "c", "d"]
    assert stored["key"].tolist() == ["0", "1", "2", "3"]
    for column in ("to", "status", "smtp_code", "message_id", "attempts"):
        assert stored[column].tolist() == results[column].tolist(), column
    assert stored["finished_at"].notna().all()


def test_duplicate_keys_fail_preflight(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame([1, 2, 2])

    with pytest.raises(mailkit.ValidationError) as caught:
        _send(df, server, journal, key="id", duplicates="allow")

    problems = caught.value.problems
    assert problems["row"].tolist() == [1, 2]
    assert (problems["column"] == "id").all()
    assert problems["problem"].str.contains("same key").all()
    assert server.messages == []
    assert not journal.exists()


def test_duplicate_recipients_fail_without_key(server, tmp_path):
    df = pd.DataFrame(
        {
            "email": ["a@example.com", "b@example.com", "A@example.com"],
            "name": list("xyz"),
        }
    )

    with pytest.raises(mailkit.ValidationError) as caught:
        _send(df, server, tmp_path / "c.sqlite", duplicates="allow")

    problems = caught.value.problems
    assert problems["row"].tolist() == [0, 2]
    assert problems["problem"].str.contains("key=").all()
    assert server.messages == []


def test_same_recipients_allowed_with_key(server, tmp_path):
    df = pd.DataFrame(
        {"id": [1, 2], "email": ["a@example.com"] * 2, "name": ["first", "second"]}
    )
    results = _send(df, server, tmp_path / "c.sqlite", key="id", duplicates="allow")
    assert _statuses(results) == ["sent", "sent"]


def test_missing_and_empty_keys_fail_preflight(server, tmp_path):
    df = _frame(range(3))
    with pytest.raises(mailkit.ValidationError, match="key column 'ident' is missing"):
        _send(df, server, tmp_path / "c.sqlite", key="ident")

    df["id"] = [1, None, " "]
    with pytest.raises(mailkit.ValidationError) as caught:
        _send(df, server, tmp_path / "c.sqlite", key="id")
    problems = caught.value.problems
    assert problems["row"].tolist() == [1, 2]
    assert problems["problem"].str.contains("key is empty").all()
    assert server.messages == []


def test_validate_checks_keys(tmp_path):
    df = _frame([1, 1])
    common = {"subject": "Hi", "body": "B", "sender": SENDER, "duplicates": "allow"}

    assert len(mailkit.validate(df, **common)) == 0
    by_key = mailkit.validate(df, key="id", **common)
    assert by_key["row"].tolist() == [0, 1]
    # Without key=, rows are identified by their recipients, which repeat here.
    by_journal = mailkit.validate(df, journal=tmp_path / "j.sqlite", **common)
    assert by_journal["row"].tolist() == [0, 1]
    assert by_journal["problem"].str.contains("same recipients").all()
    assert not (tmp_path / "j.sqlite").exists()


def test_other_key_than_journal_is_rejected(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    _send(_frame(range(2)), server, journal, key="id")

    with pytest.raises(mailkit.JournalError, match="key='id'"):
        _send(_frame(range(2)), server, journal)
    assert len(server.messages) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"key": "id"}, "pass journal="),
        ({"retry_unknown": True}, "pass journal="),
        ({"journal": 5}, "Invalid journal"),
        ({"journal": ""}, "Invalid journal"),
        ({"journal": "j.sqlite", "retry_unknown": "yes"}, "Invalid retry_unknown"),
        ({"daily_quota": 0}, "Invalid daily_quota"),
        ({"daily_quota": 2.5}, "Invalid daily_quota"),
        ({"daily_quota": True}, "Invalid daily_quota"),
    ],
)
def test_invalid_journal_options(server, options, message):
    with pytest.raises(mailkit.ConfigurationError, match=message):
        mailkit.send_bulk(
            _frame(range(2)), subject="Hi", body="B", sender=SENDER, smtp=server.url,
            **options,
        )
    assert server.messages == []


def test_daily_quota_stops_and_next_run_continues(tmp_path, caplog):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(5))
    with ScriptedSMTPServer() as server:
        with caplog.at_level(logging.INFO, logger="mailkit"):
            first = _send(df, server, journal, key="id", daily_quota=3, max_workers=2)
        assert len(server.accepted) == 3

    assert Counter(_statuses(first)) == {"sent": 3, "skipped": 2}
    skipped = first.loc[first["status"] == "skipped", "error"]
    assert skipped.str.contains("daily quota of 3 messages is used up").all()
    assert skipped.str.contains("run again after").all()
    assert first.attrs["daily_quota_used"] == 3

    # Within the same 24 hours the next run sends nothing and connects nowhere.
    with ScriptedSMTPServer() as server:
        second = _send(df, server, journal, key="id", daily_quota=3)
        assert not server.ehlo_seen.is_set()
    assert Counter(_statuses(second)) == {"skipped": 5}

    # A day later the quota allows the rest.
    with sqlite3.connect(journal) as db:
        db.execute("UPDATE sends SET at = at - ?", (25 * 3600,))
    with ScriptedSMTPServer() as server:
        third = _send(df, server, journal, key="id", daily_quota=3)
        resent = sorted(m.recipients[0] for m in server.accepted)
    unsent = sorted(first.loc[first["status"] == "skipped", "to"])
    assert resent == unsent
    assert Counter(_statuses(third)) == {"sent": 2, "skipped": 3}


def test_daily_quota_ignores_refused_rows(tmp_path):
    df = _frame(range(5))
    refused = {"user0@example.com": "550 5.1.1 no such user"}
    with ScriptedSMTPServer(refuse=refused) as server:
        results = _send(
            df, server, tmp_path / "c.sqlite", key="id", daily_quota=3, mode="fast"
        )
    assert _statuses(results) == ["failed", "sent", "sent", "sent", "skipped"]


def test_daily_quota_without_journal(server):
    df = _frame(range(4))
    results = mailkit.send_bulk(
        df, subject="Hi", body="B", sender=SENDER, smtp=server.url, daily_quota=2,
        mode="fast",
    )
    assert _statuses(results) == ["sent", "sent", "skipped", "skipped"]
    assert "earlier runs are not counted" in results.loc[3, "error"]


def test_second_batch_on_same_journal_is_rejected(tmp_path):
    journal = tmp_path / "c.sqlite"
    df = _frame(range(3))
    with ScriptedSMTPServer(stall={1}) as server:
        other = mailkit.journal.Journal.open(journal, key_spec="column:id")
        try:
            with pytest.raises(mailkit.JournalLockedError, match="in use by another"):
                _send(df, server, journal, key="id")
        finally:
            other.close()
        assert not server.ehlo_seen.is_set()


def test_key_text_normalises_numbers():
    assert key_text(7) == "7"
    assert key_text(7.0) == "7"
    assert key_text("7.00") == "7"
    assert key_text("007") == "7"
    assert key_text(" A-17 ") == "A-17"
    assert key_text(7.5) == "7.5"
    assert key_text(True) == "True"


def test_content_hash_ignores_volatile_parts():
    plan = mailkit.api._plan(
        "Hi {{ name }}", "Body {{ name }}", "<p>{{ name }}</p>", "email", SENDER, {}
    )
    row = {"email": "a@example.com", "name": "Ann"}
    first = plan.compose(0, row)
    second = plan.compose(0, row)
    assert first.data != second.data
    assert content_hash(first) == content_hash(second)
    other_date = re.sub(
        rb"(?m)^Date: [^\r\n]*", b"Date: Mon, 01 Jan 2024 09:00:00 +0000", first.data
    )
    assert other_date != first.data
    assert content_hash(replace(first, data=other_date)) == content_hash(first)
    assert content_hash(first) != content_hash(plan.compose(0, {**row, "name": "Bo"}))
    other_rcpt = {**row, "email": "b@example.com"}
    assert content_hash(first) != content_hash(plan.compose(0, other_rcpt))


def test_recipient_key_ignores_display_names(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    df = pd.DataFrame(
        {
            "email": ["Ann Lee <ann@example.com>", "bo@example.com"],
            "cc": ["boss@example.com", ""],
        }
    )
    common = {"subject": "Hi", "body": "B", "sender": SENDER, "smtp": server.url}

    def _send_cc(frame):
        return mailkit.send_bulk(
            frame, cc="cc", journal=journal, allow_empty=["cc"], **common
        )

    first = _send_cc(df)
    assert _statuses(first) == ["sent", "sent"]
    assert sorted(server.messages[0].recipients + server.messages[1].recipients) == [
        "ann@example.com",
        "bo@example.com",
        "boss@example.com",
    ]

    renamed = df.copy()
    renamed.loc[0, "email"] = "Ann <ANN@example.com>"
    assert _statuses(_send_cc(renamed)) == ["skipped", "skipped"]

    # Another Cc is another envelope, so without key= it is another row.
    more = df.copy()
    more.loc[1, "cc"] = "boss@example.com"
    assert _statuses(_send_cc(more)) == ["skipped", "sent"]
    assert len(server.messages) == 3


def test_dry_run_never_opens_journal(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    results = _send(_frame(range(3)), server, journal, key="id", dry_run=True)

    assert results.attrs["dry_run"] is True
    assert not journal.exists()
    assert not mailkit.journal.lock_path(journal).exists()
    assert server.messages == []
    with pytest.raises(mailkit.ValidationError, match="same key"):
        _send(
            _frame([1, 1]), server, journal, key="id", dry_run=True, duplicates="allow"
        )
    assert not journal.exists()


def test_dry_run_while_journal_in_use(server, tmp_path):
    journal = tmp_path / "c.sqlite"
    with mailkit.journal.Journal.open(journal, key_spec="column:id"):
        results = _send(_frame(range(2)), server, journal, key="id", dry_run=True)
    assert len(results) == 2
    assert server.messages == []


def test_partial_row_is_not_sent_again(tmp_path):
    journal = tmp_path / "c.sqlite"
    df = pd.DataFrame(
        {"id": [1], "email": ["a@example.com, gone@example.com"], "name": ["Ann"]}
    )
    refused = {"gone@example.com": "550 5.1.1 no such user"}
    with ScriptedSMTPServer(refuse=refused) as server:
        first = _send(df, server, journal, key="id")
        second = _send(df, server, journal, key="id")
        assert len(server.accepted) == 1

    assert _statuses(first) == ["partial"]
    assert _statuses(second) == ["skipped"]
    assert "partial" in second.loc[0, "error"]
    stored = mailkit.journal_results(journal)
    assert _statuses(stored) == ["partial"]
    assert stored.loc[0, "refused"] == "gone@example.com (550 5.1.1 no such user)"
    assert stored.loc[0, "refused"] == first.loc[0, "refused"]


class _FailingCommit:
    """Wraps a real sqlite3 connection and fails its n-th COMMIT once."""

    def __init__(self, db, failing_commit: int) -> None:
        self._db = db
        self._commits = 0
        self._failing_commit = failing_commit

    def execute(self, sql, *params):
        if sql == "COMMIT":
            self._commits += 1
            if self._commits == self._failing_commit:
                raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *params)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_journal_write_failure_stops_batch(server, tmp_path, monkeypatch):
    journal = tmp_path / "c.sqlite"
    real_connect = mailkit.journal._connect
    # Commits 1 and 2 start the run and register the rows; 3 and 4 mark the
    # first two rows, so the mark of the third row fails.
    monkeypatch.setattr(
        mailkit.journal, "_connect", lambda path: _FailingCommit(real_connect(path), 5)
    )

    with pytest.raises(mailkit.BatchStopped, match="disk I/O error") as caught:
        _send(_frame(range(5)), server, journal, key="id", mode="fast")

    results = caught.value.results
    assert _statuses(results) == ["sent", "sent", "skipped", "skipped", "skipped"]
    error = results.loc[2, "error"]
    assert error.startswith(f"Not sent: the journal {journal} could not be written")
    assert "(disk I/O error)" in error
    assert "run the same call again." in error
    assert [m.recipients[0] for m in server.messages] == [
        "user0@example.com",
        "user1@example.com",
    ]
    monkeypatch.undo()
    assert _statuses(mailkit.journal_results(journal)) == _statuses(results)
