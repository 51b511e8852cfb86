"""mailkit.widgets.SendPanel and app(): batches started from the form."""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import sys
import threading
import time
from collections import Counter

import ipywidgets
import ipywidgets.embed
import IPython.display
import pandas as pd
import pytest
from delayed_smtp import DelayedSMTPServer

import mailkit
from mailkit.providers import PROVIDERS
from mailkit.widgets import CUSTOM, Composer, SendPanel, SMTPSettings, app
from mailkit.widgets import send_panel as send_panel_module

SENDER = "Accounts team <accounts@example.com>"
SECRET = "example-secret-123"


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "email": [f"user{i}@example.com" for i in range(rows)],
            "name": [f"Person {i}" for i in range(rows)],
        }
    )


def _panel(df: pd.DataFrame, url: str, **panel_options) -> SendPanel:
    settings = SMTPSettings(url)
    composer = Composer(
        df, settings=settings, sender=SENDER, subject="Hi {{ name }}",
        body="Hello {{ name }}",
    )
    return SendPanel(df, composer, settings, **panel_options)


def _wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_send_panel_sends_every_row(server, recipients, templates):
    settings = SMTPSettings(server.url)
    composer = Composer(
        recipients,
        settings=settings,
        sender=templates["sender"],
        subject=templates["subject"].read_text(),
        body=templates["body"].read_text(),
        html=templates["html"].read_text(),
    )
    panel = SendPanel(recipients, composer, settings)

    assert panel.start() is True
    assert panel.wait(60)

    results = panel.results
    assert results is not None
    assert (results["status"] == "sent").all()
    assert list(results.index) == list(recipients.index)
    received = Counter(rcpt for m in server.messages for rcpt in m.recipients)
    assert received == Counter(recipients["email"])
    assert panel.progress.max == 100
    assert panel.progress.value == 100
    assert panel.progress.bar_style == "success"
    assert panel.progress_text.value == "100 / 100"
    assert "<b>100</b> sent" in panel.counters.value
    assert "<b>0</b> failed" in panel.counters.value
    assert "100 row(s): 100 sent" in panel.status.value
    assert panel.send_button.disabled is False
    assert panel.stop_button.disabled is True
    assert panel.running is False
    assert "<svg" in panel.chart.value
    assert "100 of 100 row(s)" in panel.results_view.value


def test_send_panel_message_bytes(server):
    df = _frame(3)
    panel = _panel(df, server.url)

    panel.start()
    assert panel.wait(30)

    by_recipient = {m.recipients[0]: m.message for m in server.messages}
    for row in df.itertuples():
        message = by_recipient[row.email]
        assert message["Subject"] == f"Hi {row.name}"
        assert message.get_content().strip() == f"Hello {row.name}"
        assert message["Message-ID"] == panel.results.loc[row.Index, "message_id"]


def test_send_panel_disabled_during_batch():
    df = _frame(6)
    with DelayedSMTPServer(delay=0.2) as slow:
        panel = _panel(df, slow.url, mode="fast")

        panel.send_button.click()
        disabled_during = panel.send_button.disabled
        stop_enabled_during = not panel.stop_button.disabled
        inputs_disabled = [panel.mode.disabled, panel.rate.disabled, panel.dry_run.disabled]
        panel.send_button.click()
        second_start = panel.start()
        refusal = panel.status.value
        assert panel.wait(30)
        received = slow.messages

    assert disabled_during is True
    assert stop_enabled_during is True
    assert inputs_disabled == [True, True, True]
    assert second_start is False
    assert "A batch is running" in refusal
    assert Counter(m.recipients[0] for m in received) == Counter(df["email"])
    assert panel.send_button.disabled is False


def test_send_panel_concurrent_starts_send_once():
    df = _frame(4)
    with DelayedSMTPServer(delay=0.1) as slow:
        panel = _panel(df, slow.url, mode="fast")
        barrier = threading.Barrier(4)
        started = []

        def press() -> None:
            barrier.wait(5)
            started.append(panel.start())

        threads = [threading.Thread(target=press) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert panel.wait(30)
        received = slow.messages

    assert sorted(started) == [False, False, False, True]
    assert len(received) == 4


def test_send_panel_stop_button():
    df = _frame(30)
    with DelayedSMTPServer(delay=0.1) as slow:
        panel = _panel(df, slow.url, mode="fast")
        panel.start()
        assert _wait_until(lambda: panel.progress.value >= 2)

        panel.stop_button.click()
        stopping = panel.status.value
        assert panel.wait(30)
        received = slow.messages

    results = panel.results
    sent = results[results["status"] == "sent"]
    skipped = results[results["status"] == "skipped"]
    assert "Stopping" in stopping
    assert 2 <= len(sent) < 30
    assert len(sent) + len(skipped) == 30
    assert (skipped["error"] == "Not sent: stopped by the user.").all()
    assert sorted(m.recipients[0] for m in received) == sorted(sent["to"])
    assert "Stopped (stopped by the user)" in panel.status.value
    assert f"<b>{len(skipped)}</b> skipped" in panel.counters.value
    assert panel.progress.value == 30
    assert panel.progress.bar_style == "warning"
    assert panel.send_button.disabled is False
    assert panel.stop_button.disabled is True


def test_send_panel_counts_failed_rows():
    df = _frame(20)
    refused = frozenset({"user3@example.com", "user7@example.com", "user11@example.com"})
    with DelayedSMTPServer(delay=0.05, refuse=refused) as slow:
        panel = _panel(df, slow.url, mode="instant", max_workers=4)
        panel.start()
        assert panel.wait(30)
        received = slow.messages

    results = panel.results
    assert set(results.loc[results["status"] == "failed", "to"]) == refused
    assert len(received) == 17
    assert refused.isdisjoint(m.recipients[0] for m in received)
    assert "<b>17</b> sent" in panel.counters.value
    assert "<b>3</b> failed" in panel.counters.value
    assert panel.progress.value == 20
    assert panel.progress.bar_style == "warning"
    assert list(panel.status_filter.options) == ["all", "sent (17)", "failed (3)"]

    panel.status_filter.value = "failed (3)"

    assert "3 of 20 row(s)" in panel.results_view.value
    assert "550" in panel.results_view.value
    assert "user7@example.com" in panel.results_view.value
    assert "user8@example.com" not in panel.results_view.value


def test_send_panel_log_view_shows_failures():
    df = _frame(4)
    with DelayedSMTPServer(refuse=frozenset({"user2@example.com"})) as slow:
        panel = _panel(df, slow.url, mode="fast")
        panel.start()
        assert panel.wait(30)

    assert "Log (" in panel.log_view.value
    assert "user2@example.com: failed" in panel.log_view.value


def test_send_panel_updates_from_one_thread():
    df = _frame(12)
    writers: dict[str, set[str]] = {}

    def record(change) -> None:
        name = change["owner"].__class__.__name__
        writers.setdefault(threading.current_thread().name, set()).add(name)

    with DelayedSMTPServer(delay=0.1) as slow:
        panel = _panel(df, slow.url, mode="instant", max_workers=3)
        seen = []
        panel.progress.observe(lambda change: seen.append(change["new"]), names="value")
        for widget in (panel.progress, panel.progress_text, panel.counters,
                       panel.status, panel.results_view, panel.send_button):
            widget.observe(record)
        panel.start()
        assert panel.wait(30)

    assert set(writers) <= {"MainThread", "mailkit-widget-display"}
    assert "mailkit-widget-display" in writers
    assert seen == sorted(seen)
    assert seen[-1] == 12
    assert any(0 < value < 12 for value in seen)


def test_send_panel_no_output_from_threads(monkeypatch, capfd):
    """Nothing but the main thread prints, displays or enters an Output widget."""
    calls: list[tuple[str, str]] = []

    def recorder(name, original):
        def wrapper(*args, **kwargs):
            calls.append((name, threading.current_thread().name))
            return original(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "print", recorder("print", builtins.print))
    monkeypatch.setattr(
        IPython.display, "display", recorder("display", IPython.display.display)
    )
    monkeypatch.setattr(
        ipywidgets.Output, "__enter__", recorder("Output", ipywidgets.Output.__enter__)
    )
    # A kernel has no logging handlers unless the user adds some, so mailkit's
    # warnings would reach Python's last-resort handler, which writes to stderr.
    # Turning off propagation to pytest's handlers reproduces that here.
    monkeypatch.setattr(logging.getLogger("mailkit"), "propagate", False)
    df = _frame(8)
    refused = frozenset({"user1@example.com", "user5@example.com"})
    with DelayedSMTPServer(delay=0.02, refuse=refused) as slow:
        panel = _panel(df, slow.url, mode="instant", max_workers=4)
        panel.start()
        assert panel.wait(30)

    assert [call for call in calls if call[1] != "MainThread"] == []
    output = capfd.readouterr()
    assert output.out == ""
    assert output.err == ""
    assert "<b>2</b> failed" in panel.counters.value


def test_send_panel_validation_error(server):
    df = _frame(3)
    df.loc[1, "email"] = "not an address"
    panel = _panel(df, server.url)

    panel.start()
    assert panel.wait(30)

    assert "problem(s) found before sending; nothing was sent" in panel.status.value
    assert "not an address" in panel.status.value
    assert panel.results is None
    assert server.sessions == 0
    assert panel.progress.bar_style == "danger"
    assert panel.send_button.disabled is False


def test_send_panel_connection_refused():
    panel = _panel(_frame(3), "smtp://127.0.0.1:9")

    panel.start()
    assert panel.wait(30)

    assert "Cannot connect to 127.0.0.1:9" in panel.status.value
    assert "Traceback" not in panel.status.value
    assert panel.progress.bar_style == "danger"
    assert panel.send_button.disabled is False


def test_send_panel_incomplete_form(server):
    panel = _panel(_frame(2), server.url)
    panel.composer.sender.value = ""

    assert panel.start() is False

    assert "sender is missing" in panel.status.value
    assert panel.send_button.disabled is False
    assert panel.running is False
    assert server.sessions == 0


def test_send_panel_unexpected_error(server, monkeypatch, caplog):
    def broken_send_bulk(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(send_panel_module, "send_bulk", broken_send_bulk)
    panel = _panel(_frame(2), server.url)

    panel.start()
    assert panel.wait(30)

    assert "The batch failed: RuntimeError: disk full" in panel.status.value
    assert "Traceback" not in panel.status.value
    assert "the batch failed" in caplog.text
    assert panel.send_button.disabled is False


def test_send_panel_display_error_keeps_form_usable(server, monkeypatch, caplog):
    def broken_chart(results):
        raise ValueError("chart broke")

    monkeypatch.setattr(send_panel_module, "results_chart_svg", broken_chart)
    panel = _panel(_frame(2), server.url)

    panel.start()
    assert panel.wait(30)

    assert "updating the form failed" in caplog.text
    assert len(server.messages) == 2
    assert panel.send_button.disabled is False
    assert panel.running is False


def test_send_panel_fast_mode_one_connection(server):
    panel = _panel(_frame(10), server.url, mode="fast")

    panel.start()
    assert panel.wait(30)

    assert server.sessions == 1
    assert len(server.messages) == 10
    assert panel.results.attrs["mode"] == "fast"


def test_send_panel_workers_cap_connections(server):
    panel = _panel(_frame(40), server.url)
    panel.workers.value = 2

    panel.start()
    assert panel.wait(30)

    assert 1 <= server.max_active_sessions <= 2
    assert panel.results.attrs["workers"] == 2


def _choose_provider(panel: SendPanel, name: str, server) -> None:
    # Choose the preset, then point the fields at the capture server on
    # 127.0.0.1, so nothing connects to the provider's real host.
    panel.settings.preset.value = name
    panel.settings.host.value = "127.0.0.1"
    panel.settings.security.value = "none"
    panel.settings.port.value = server.port


_PRESET_ATTRS = ("provider", "max_connections", "daily_quota", "rate_per_s")


def test_send_panel_provider_preset_limits(server):
    df = _frame(12)
    panel = _panel(df, server.url)
    _choose_provider(panel, "microsoft365", server)
    panel.rate.value = 100.0

    panel.start()
    assert panel.wait(30)
    results = panel.results
    direct = mailkit.send_bulk(
        _frame(12), subject="Hi", body="Hello", sender=SENDER, smtp=server.url,
        provider="microsoft365", rate=100, progress=False,
    )

    assert (results["status"] == "sent").all()
    assert results.attrs["provider"] == "microsoft365"
    assert results.attrs["max_connections"] == 3
    assert results.attrs["peak_connections"] <= 3
    assert results.attrs["daily_quota"] == 10_000
    assert results.attrs["rate_per_s"] == 100
    for name in _PRESET_ATTRS:
        assert results.attrs[name] == direct.attrs[name], name
    assert len(server.messages) == 24


def test_send_panel_provider_quota_stops_batch(server, monkeypatch):
    small = dataclasses.replace(PROVIDERS["ses"], rate=None, daily_quota=2)
    monkeypatch.setitem(PROVIDERS, "ses", small)
    panel = _panel(_frame(3), server.url)
    _choose_provider(panel, "ses", server)

    panel.start()
    assert panel.wait(30)

    statuses = Counter(panel.results["status"].astype(str))
    assert statuses == {"sent": 2, "skipped": 1}
    assert panel.results.attrs["provider"] == "ses"
    assert panel.results.attrs["daily_quota"] == 2
    assert len(server.messages) == 2


def test_send_panel_custom_has_no_provider(server):
    panel = _panel(_frame(2), server.url)

    panel.start()
    assert panel.wait(30)

    assert panel.settings.preset.value == CUSTOM
    assert panel.results.attrs["provider"] is None
    assert panel.results.attrs["max_connections"] == 10


def test_send_panel_workers_only_for_instant(server):
    panel = _panel(_frame(1), server.url)

    panel.mode.value = "safe"
    assert panel.workers.disabled is True
    panel.mode.value = "instant"
    assert panel.workers.disabled is False


def test_send_panel_rate_spaces_messages(server):
    panel = _panel(_frame(4), server.url, mode="fast")
    panel.rate.value = 10.0

    panel.start()
    assert panel.wait(30)

    # At 10 messages per second, the fourth message starts at least 0.3 s after
    # the first. The margin allows for a busy machine that records a start late.
    starts = panel.results["started_at"]
    span = (starts.max() - starts.min()).total_seconds()
    assert span >= 0.25, span


def test_send_panel_second_batch(server):
    df = _frame(5)
    panel = _panel(df, server.url)

    panel.start()
    assert panel.wait(30)
    first = panel.results
    panel.start()
    assert panel.wait(30)

    assert panel.results is not first
    assert len(server.messages) == 10
    assert Counter(m.recipients[0] for m in server.messages) == Counter(
        list(df["email"]) * 2
    )
    assert panel.progress.value == 5


def test_send_panel_dry_run_connects_nowhere(server):
    df = _frame(5)
    panel = _panel(df, "smtp://127.0.0.1:9")
    panel.dry_run.value = True

    assert panel.start() is True
    assert panel.wait(30)

    results = panel.results
    assert results.attrs["dry_run"] is True
    assert (results["status"] == "skipped").all()
    assert results["error"].str.startswith("Dry run").all()
    assert "Dry run: 5 of 5 message(s) built and checked" in panel.status.value
    assert panel.progress.bar_style == "success"
    assert panel.progress.value == 5
    assert server.sessions == 0


def test_send_panel_dry_run_needs_no_settings():
    df = _frame(2)
    panel = _panel(df, "smtp://127.0.0.1:9")
    panel.settings.host.value = ""
    panel.dry_run.value = True

    assert panel.start() is True
    assert panel.wait(30)

    assert "Dry run: 2 of 2" in panel.status.value
    panel.dry_run.value = False
    assert panel.start() is False
    assert "host is missing" in panel.status.value


def test_send_panel_sends_attachments(server, tmp_path):
    df = _frame(3)
    files = []
    for index in range(3):
        path = tmp_path / f"statement-{index}.csv"
        path.write_text(f"row,{index}\n", encoding="utf-8")
        files.append(str(path))
    df["statement"] = files
    panel = _panel(df, server.url)
    panel.composer.attachments.value = "statement"

    panel.start()
    assert panel.wait(30)

    assert (panel.results["status"] == "sent").all()
    for received in server.messages:
        index = int(received.recipients[0].removeprefix("user").split("@")[0])
        (attachment,) = received.message.iter_attachments()
        assert attachment.get_filename() == f"statement-{index}.csv"
        assert attachment.get_content().replace("\r\n", "\n") == f"row,{index}\n"


def test_send_panel_journal_resumes_after_stop(tmp_path):
    df = _frame(12)
    journal = tmp_path / "campaign.sqlite"
    with DelayedSMTPServer(delay=0.1) as slow:
        panel = _panel(df, slow.url, mode="fast")
        panel.journal.value = str(journal)
        panel.start()
        assert _wait_until(lambda: panel.progress.value >= 3)
        panel.stop()
        assert panel.wait(30)
        first = panel.results

        panel.start()
        assert panel.wait(30)
        second = panel.results
        received = slow.messages

    sent_first = set(first.loc[first["status"] == "sent", "to"])
    sent_second = set(second.loc[second["status"] == "sent", "to"])
    assert 3 <= len(sent_first) < 12
    assert sent_first.isdisjoint(sent_second)
    assert sent_first | sent_second == set(df["email"])
    assert Counter(m.recipients[0] for m in received) == Counter(df["email"])
    assert journal.exists()
    assert (second.loc[second["to"].isin(sent_first), "status"] == "skipped").all()


def test_send_panel_journal_key_column(tmp_path, server):
    df = _frame(3)
    df["customer"] = ["c1", "c2", "c3"]
    panel = _panel(df, server.url)
    panel.journal.value = str(tmp_path / "keyed.sqlite")
    panel.key.value = "customer"

    panel.start()
    assert panel.wait(30)
    panel.start()
    assert panel.wait(30)

    assert len(server.messages) == 3
    assert (panel.results["status"] == "skipped").all()


def test_send_panel_key_defaults_to_recipients(server):
    panel = _panel(_frame(1), server.url)

    assert panel.key.label == "(the recipients)"
    assert list(panel.key.options[1:]) == [("email", "email"), ("name", "name")]


def test_send_panel_journal_locked(tmp_path):
    df = _frame(6)
    journal = tmp_path / "shared.sqlite"
    with DelayedSMTPServer(delay=0.2) as slow:
        first = _panel(df, slow.url, mode="fast")
        second = _panel(df, slow.url, mode="fast")
        first.journal.value = str(journal)
        second.journal.value = str(journal)
        first.start()
        assert _wait_until(lambda: first.progress.value >= 1)
        second.start()
        assert second.wait(30)
        assert first.wait(30)
        received = slow.messages

    assert "is in use by another batch" in second.status.value
    assert second.results is None
    assert second.progress.bar_style == "danger"
    assert Counter(m.recipients[0] for m in received) == Counter(df["email"])


def test_app_runs_whole_flow():
    df = _frame(5)
    with DelayedSMTPServer(login=("robot@example.com", SECRET)) as auth_server:
        form = app(
            df, smtp=auth_server.url, sender=SENDER, subject="Hi {{ name }}",
            body="Hello {{ name }}",
        )
        form.settings.username.value = "robot@example.com"
        form.settings.password.value = SECRET
        form.settings.allow_insecure_auth.value = True

        form.panel.send_button.click()
        assert form.panel.wait(30)
        received = auth_server.messages
        logins = auth_server.logins

    assert [form.tabs.get_title(i) for i in range(3)] == ["1. Server", "2. Message", "3. Send"]
    assert form.results is form.panel.results
    assert (form.results["status"] == "sent").all()
    assert len(received) == 5
    assert logins
    assert all(entry == ("robot@example.com", True) for entry in logins)
    state = json.dumps(ipywidgets.embed.embed_data(views=[form]))
    assert SECRET not in state
    assert SECRET not in repr(form.settings)
    assert SECRET not in form.results.to_csv()
    assert SECRET not in json.dumps(form.results.attrs, default=str)


def test_app_reachable_from_package():
    assert mailkit.widgets.app is app
    assert "widgets" in sys.modules["mailkit"].__dict__


@pytest.mark.parametrize("bad", [[1, 2], None])
def test_app_rejects_non_frame(bad):
    with pytest.raises(TypeError, match="DataFrame"):
        app(bad)
