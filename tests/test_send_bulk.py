"""send_bulk end to end against a capture server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from collections import Counter

import pandas as pd
import pytest

import mailkit

SENDER = "Accounts team <accounts@example.com>"


def _parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


@pytest.mark.parametrize("mode", ["instant", "fast", "safe"])
def test_each_mode_sends_every_row_once(server, recipients, templates, mode):
    options = {"delay": 0.0} if mode == "safe" else {}
    results = mailkit.send_bulk(recipients, mode=mode, smtp=server.url, **templates, **options)

    assert (results["status"] == "sent").all()
    assert list(results.index) == list(recipients.index)
    received = Counter(rcpt for m in server.messages for rcpt in m.recipients)
    assert received == Counter(recipients["email"])
    by_rcpt = {m.recipients[0]: _parse(m.data) for m in server.messages}
    for row in recipients.itertuples():
        message = by_rcpt[row.email]
        assert message["To"] == row.email
        assert row.invoice_id in message["Subject"]
        assert row.company in message["Subject"]
        text = message.get_body(("plain",)).get_content()
        assert f"Hello {row.first_name}," in text
        html = message.get_body(("html",)).get_content()
        assert row.invoice_id in html
        assert message["Message-ID"] == results.loc[row.Index, "message_id"]


def test_safe_mode_pauses_between_messages(server):
    df = pd.DataFrame({"email": [f"user{i}@example.com" for i in range(4)]})
    results = mailkit.send_bulk(
        df, subject="Hi", body="Body", sender=SENDER, mode="safe", delay=0.2,
        smtp=server.url,
    )
    # Start times are scheduled 0.2 s apart from the first one, which does not
    # wait; a late wake-up can shorten one gap but never the whole span.
    starts = results["started_at"].sort_values()
    span = (starts.iloc[-1] - starts.iloc[0]).total_seconds()
    assert span >= 3 * 0.2 - 0.01, starts.tolist()
    assert server.sessions == 1


def test_fast_mode_uses_one_connection(server, recipients, templates):
    mailkit.send_bulk(recipients, mode="fast", smtp=server.url, **templates)
    assert server.sessions == 1
    assert len(server.messages) == len(recipients)


def test_instant_mode_reuses_at_most_max_workers_connections(server, recipients, templates):
    mailkit.send_bulk(recipients, mode="instant", max_workers=4, smtp=server.url, **templates)
    assert 1 <= server.sessions <= 4
    assert server.max_active_sessions <= 4
    sessions = Counter(m.session for m in server.messages)
    assert sum(sessions.values()) == len(recipients)
    assert max(sessions.values()) > 1


def test_results_keep_the_input_index(server):
    df = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com"], "name": ["Ann", "Bo"]},
        index=pd.Index(["x", "y"], name="key"),
    )
    results = df.pipe(
        mailkit.send_bulk, subject="Hi {{ name }}", body="Hello", sender=SENDER,
        smtp=server.url,
    )
    assert list(results.index) == ["x", "y"]
    joined = df.join(results[["status"]])
    assert joined["status"].tolist() == ["sent", "sent"]
    for column in ("to", "status", "smtp_code", "smtp_reply", "error", "message_id",
                   "attempts", "started_at", "finished_at", "duration_s"):
        assert column in results.columns
    assert results["attempts"].tolist() == [1, 1]
    assert results["smtp_code"].tolist() == [250, 250]


def test_progress_callback_called_once_per_row(server):
    df = pd.DataFrame({"email": [f"user{i}@example.com" for i in range(7)]})
    calls = []
    mailkit.send_bulk(
        df, subject="Hi", body="Body", sender=SENDER, smtp=server.url,
        progress_callback=lambda done, total, row: calls.append((done, total, row["status"])),
    )
    assert [c[0] for c in calls] == list(range(1, 8))
    assert {c[1] for c in calls} == {7}
    assert {c[2] for c in calls} == {"sent"}


def test_summary_counts_and_timing(server, recipients, templates):
    results = mailkit.send_bulk(recipients, smtp=server.url, **templates)
    stats = mailkit.summary(results)
    assert stats["total"] == 100
    assert stats["sent"] == 100
    assert stats["failed"] == 0
    assert stats["elapsed_s"] > 0
    assert stats["messages_per_second"] > 0


def test_empty_frame_returns_empty_results(server):
    df = pd.DataFrame({"email": pd.Series([], dtype=str)})
    results = mailkit.send_bulk(df, subject="Hi", body="B", sender=SENDER, smtp=server.url)
    assert len(results) == 0
    assert server.sessions == 0


def test_last_results_kept(server):
    df = pd.DataFrame({"email": ["a@example.com"]})
    results = mailkit.send_bulk(df, subject="Hi", body="B", sender=SENDER, smtp=server.url)
    assert mailkit.last_results is results


def test_maildir_stores_each_message(server, tmp_path):
    df = pd.DataFrame({"email": ["a@example.com", "b@example.com"]})
    mailkit.send_bulk(df, subject="Hi", body="B", sender=SENDER, smtp=server.url)
    stored = list((tmp_path / "maildir" / "new").iterdir())
    assert len(stored) == 2
    assert sorted(p.read_bytes() for p in stored) == sorted(m.data for m in server.messages)


def test_last_results_cleared_by_failed_call(server):
    df = pd.DataFrame({"email": ["a@example.com"]})
    mailkit.send_bulk(df, subject="Hi", body="B", sender=SENDER, smtp=server.url)
    assert mailkit.last_results is not None
    with pytest.raises(mailkit.ValidationError):
        mailkit.send_bulk(
            pd.DataFrame({"email": ["bad"]}), subject="Hi", body="B", sender=SENDER,
            smtp=server.url,
        )
    assert mailkit.last_results is None


def test_summary_of_results_read_from_csv(server, tmp_path):
    df = pd.DataFrame({"email": ["a@example.com", "b@example.com"]})
    results = mailkit.send_bulk(df, subject="Hi", body="B", sender=SENDER, smtp=server.url)
    results.to_csv(tmp_path / "results.csv")
    reloaded = pd.read_csv(tmp_path / "results.csv", index_col=0)
    stats = mailkit.summary(reloaded)
    assert stats["sent"] == 2
    assert stats["total"] == 2
    assert stats["elapsed_s"] >= 0
    with pytest.raises(ValueError, match="Not a mailkit results DataFrame"):
        mailkit.summary(df)
    with pytest.raises(ValueError, match="the column.s. duration_s are missing"):
        mailkit.summary(reloaded.drop(columns=["duration_s"]))


def test_rate_never_speeds_up_safe_mode():
    from mailkit.modes import resolve_mode

    assert resolve_mode("safe", delay=0.5, rate=100).rate == 2.0
    assert resolve_mode("safe", rate="30/min").rate == 0.5
    assert resolve_mode("safe", delay=0, rate=5).rate == 5
    assert resolve_mode("safe").rate == 1.0
    assert resolve_mode("instant", rate=0).rate is None
