"""The thread-pool-script compatible API, on the same engine."""

from __future__ import annotations

import mailkit


def test_send_bulk_emails_concurrent_and_summary(server):
    sender = mailkit.EmailSender(smtp=server.url, sender="Team <team@example.com>")
    addresses = [f"user{i}@example.com" for i in range(25)] + ["broken"]
    updates = []
    try:
        sender.send_bulk_emails_concurrent(addresses, "Hi", "Body", max_workers=5)
    except mailkit.ValidationError as exc:
        assert exc.problems["row"].tolist() == [25]
    assert server.messages == []

    results = sender.send_bulk_emails_concurrent(
        addresses[:25], "Hello {{ email }}", "Body", max_workers=5,
        progress_callback=lambda done, total, result: updates.append((done, total, result.recipient)),
    )
    assert [r.recipient for r in results] == addresses[:25]
    assert all(r.success and r.error is None and r.smtp_code == 250 for r in results)
    assert len(updates) == 25
    assert updates[-1][:2] == (25, 25)
    assert server.max_active_sessions <= 5
    subjects = sorted(m.message["Subject"] for m in server.messages)
    assert subjects == sorted(f"Hello {a}" for a in addresses[:25])

    stats = sender.get_summary(results)
    assert stats["total"] == 25
    assert stats["successful"] == 25
    assert stats["failed"] == 0
    assert stats["success_rate"] == 1.0
    assert stats["elapsed_s"] > 0
    assert stats["messages_per_second"] > 0
