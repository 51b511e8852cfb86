"""The send form: mode, workers, rate, dry run, Send and Stop, progress and results."""

from __future__ import annotations

import html
import logging
import threading
from typing import Any

import ipywidgets as w
import pandas as pd

from ..api import send_bulk
from ..batch import DRY_RUN_NOTE
from ..engine import ProgressCallback
from ..errors import BatchStopped, MailkitError, ValidationError
from ..modes import DEFAULT_MAX_WORKERS, MODES
from ..results import STATUSES, summary
from ..stop import StopToken
from .background import BatchProgress, BatchRun
from .chart import STATUS_COLORS, results_chart_svg
from .composer import Composer
from .feedback import error_html, frame_html, info_html, success_html, warning_html
from .settings import SMTPSettings

__all__ = ["SendPanel"]

logger = logging.getLogger(__name__)

_ALL = "all"
_RECIPIENTS_KEY = "(the recipients)"
_STYLE = {"description_width": "9em"}
_MODE_TOOLTIPS = (
    "several connections in parallel",
    "one connection, no pauses",
    "one connection, with a pause between messages",
)


def _counters_html(counts: dict[str, int]) -> str:
    badges = "".join(
        f'<span class="mailkit-count-{status}" style="margin-right: 1em; '
        f'color: {STATUS_COLORS[status]}"><b>{counts.get(status, 0)}</b> {status}</span>'
        for status in STATUSES
    )
    return f'<div class="mailkit-counters">{badges}</div>'


def _log_html(lines: list[str]) -> str:
    if not lines:
        return ""
    text = html.escape("\n".join(lines))
    return (
        f"<details><summary>Log ({len(lines)} line(s))</summary>"
        f'<pre class="mailkit-log" style="white-space: pre-wrap">{text}</pre></details>'
    )


class SendPanel(w.VBox):
    """A form that sends ``df`` with the templates of ``composer`` through the
    server of ``settings``, showing live progress and then the results.

    The provider chosen in ``settings`` reaches :func:`mailkit.send_bulk` as
    ``SMTPConfig.provider``, so the batch gets that provider's connection cap,
    rate and daily quota, and ``results.attrs["provider"]`` names it.

    The batch runs in a background thread, so the kernel stays responsive and
    Stop can be clicked. With a journal file, pressing Send again after a Stop
    or a crash sends only the rows that the journal does not record as sent. Send is disabled while a batch runs, and :meth:`start`
    refuses a second batch, so a double click never sends twice. The results
    DataFrame of the last batch is :attr:`results`.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        composer: Composer,
        settings: SMTPSettings,
        *,
        mode: str = "instant",
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        self.df = df
        self.composer = composer
        self.settings = settings
        self.results: pd.DataFrame | None = None
        self._run: BatchRun | None = None
        self._busy = False
        self._lock = threading.Lock()

        self.mode = w.ToggleButtons(
            options=list(MODES), value=mode, tooltips=list(_MODE_TOOLTIPS),
            description="Mode", style=_STYLE,
        )
        self.workers = w.BoundedIntText(
            value=max_workers, min=1, max=100, description="Workers", style=_STYLE,
            tooltip="connections in parallel (instant mode)",
        )
        self.rate = w.BoundedFloatText(
            value=0.0, min=0.0, max=10_000.0, description="Rate (msg/s)",
            style=_STYLE, tooltip="messages per second over all connections; 0: no cap",
        )
        self.journal = w.Text(
            description="Journal file", placeholder="optional: campaign.sqlite",
            style=_STYLE, layout=w.Layout(width="32em"),
            tooltip="SQLite file that records each row; Send again sends only the "
            "rows not sent yet",
        )
        self.key = w.Dropdown(
            options=[(_RECIPIENTS_KEY, _RECIPIENTS_KEY)]
            + [(str(column), column) for column in df.columns],
            index=0, description="Row key", style=_STYLE,
            tooltip="column that identifies a row in the journal",
        )
        self.dry_run = w.Checkbox(
            value=False, description="Dry run (render and check, connect to nothing)",
            indent=False, layout=w.Layout(width="auto"),
        )
        self.send_button = w.Button(
            description=f"Send {len(df)} messages", button_style="primary",
            icon="paper-plane", layout=w.Layout(width="auto"),
        )
        self.stop_button = w.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.progress = w.IntProgress(
            value=0, min=0, max=max(len(df), 1), description="Progress", style=_STYLE,
            layout=w.Layout(width="32em"),
        )
        self.progress_text = w.HTML(f"0 / {len(df)}")
        self.counters = w.HTML(_counters_html({}))
        self.status = w.HTML()
        self.log_view = w.HTML()
        self.status_filter = w.Dropdown(
            options=[_ALL], value=_ALL, description="Show", disabled=True, style=_STYLE
        )
        self.results_view = w.HTML()
        self.chart = w.HTML()

        for widget, name in (
            (self.mode, "mode"),
            (self.workers, "workers"),
            (self.rate, "rate"),
            (self.journal, "journal"),
            (self.key, "journal-key"),
            (self.dry_run, "dry-run"),
            (self.send_button, "send-button"),
            (self.stop_button, "stop-button"),
            (self.progress, "progress"),
            (self.progress_text, "progress-text"),
            (self.status, "send-status"),
            (self.status_filter, "status-filter"),
            (self.results_view, "results"),
        ):
            widget.add_class(f"mailkit-{name}")

        super().__init__(
            [
                self.mode,
                self.workers,
                self.rate,
                self.journal,
                self.key,
                self.dry_run,
                w.HBox([self.send_button, self.stop_button]),
                w.HBox([self.progress, self.progress_text]),
                self.counters,
                self.status,
                self.log_view,
                self.chart,
                self.status_filter,
                self.results_view,
            ]
        )
        self.add_class("mailkit-send-panel")

        self.mode.observe(self._on_mode, names="value")
        self.send_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.status_filter.observe(lambda _: self._show_results_table(), names="value")
        self._on_mode({"new": mode})

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the results are shown."""
        return self._busy

    def _on_mode(self, change: dict) -> None:
        self.workers.disabled = change["new"] != "instant"

    def _inputs(self) -> list[w.DOMWidget]:
        return [self.mode, self.workers, self.rate, self.journal, self.key, self.dry_run]

    # -- starting and stopping ----------------------------------------------------

    def start(self) -> bool:
        """Start sending in a background thread, as the Send button does.

        Returns False, and starts nothing, while a batch is running or when the
        form is incomplete, and shows the reason in the form.
        """
        with self._lock:
            if self._busy:
                self.status.value = info_html(
                    "A batch is running; press Stop to end it before sending again."
                )
                return False
            try:
                call = self._send_arguments()
            except (MailkitError, ValueError) as exc:
                self.status.value = error_html(str(exc))
                return False
            self._busy = True
        self._prepare_view()
        self._run = BatchRun(
            lambda callback, token: self._call_send_bulk(call, callback, token),
            len(self.df),
            on_progress=self._show_progress,
            on_finish=self._finish,
        )
        self._run.start()
        return True

    def _send_arguments(self) -> dict[str, Any]:
        call = dict(self.composer.options())
        call["mode"] = self.mode.value
        call["max_workers"] = int(self.workers.value)
        if self.rate.value > 0:
            call["rate"] = float(self.rate.value)
        if self.dry_run.value:
            # A dry run sends nothing, so it neither needs the server nor
            # writes to the journal.
            call["dry_run"] = True
            return call
        call["smtp"] = self.settings.config()
        journal = self.journal.value.strip()
        if journal:
            call["journal"] = journal
            # Index 0 is "(the recipients)", send_bulk's default key; an index
            # avoids confusing it with a column of the same name.
            if self.key.index:
                call["key"] = self.key.value
        return call

    def _call_send_bulk(
        self, call: dict[str, Any], callback: ProgressCallback, token: StopToken
    ) -> pd.DataFrame:
        return send_bulk(
            self.df, **call, progress=False, progress_callback=callback, stop=token
        )

    def _prepare_view(self) -> None:
        self.send_button.disabled = True
        self.stop_button.disabled = False
        for widget in self._inputs():
            widget.disabled = True
        self.status_filter.disabled = True
        self.progress.max = max(len(self.df), 1)
        self.progress.value = 0
        self.progress.bar_style = ""
        self.progress_text.value = f"0 / {len(self.df)}"
        self.counters.value = _counters_html({})
        self.log_view.value = ""
        self.chart.value = ""
        self.results_view.value = ""
        what = "Checking" if self.dry_run.value else "Sending"
        self.status.value = info_html(f"{what} {len(self.df)} row(s) ...")

    def stop(self) -> None:
        """Ask the running batch to stop: no new message starts, and messages
        already in an SMTP transaction finish."""
        run = self._run
        if run is None or not self._busy:
            return
        run.stop()
        self.stop_button.disabled = True
        self.status.value = warning_html(
            "Stopping: messages already being sent finish, no new one starts."
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the batch has finished and its results are shown; True then."""
        run = self._run
        if run is None:
            return True
        return run.join(timeout)

    # -- thread mailkit-widget-display --------------------------------------------

    def _show_progress(self, progress: BatchProgress) -> None:
        self.progress.value = progress.done
        rate = progress.done / progress.elapsed_s if progress.elapsed_s > 0 else 0.0
        self.progress_text.value = (
            f"{progress.done} / {progress.total} ({rate:.1f} msg/s)"
        )
        self.counters.value = _counters_html(progress.counts)
        self.log_view.value = _log_html(progress.log_lines)

    def _finish(self, results: pd.DataFrame | None, error: BaseException | None) -> None:
        try:
            if isinstance(error, BatchStopped):
                results = error.results
            self._report(results, error)
            if results is not None:
                self._show_results(results)
        finally:
            self.send_button.disabled = False
            self.stop_button.disabled = True
            for widget in self._inputs():
                widget.disabled = False
            self._on_mode({"new": self.mode.value})
            self._busy = False

    def _report(self, results: pd.DataFrame | None, error: BaseException | None) -> None:
        if isinstance(error, ValidationError):
            self.progress.bar_style = "danger"
            self.status.value = error_html(
                f"{len(error.problems)} problem(s) found before sending; nothing was "
                "sent. Fix them in the message form or the DataFrame."
            ) + frame_html(error.problems, index=False)
        elif isinstance(error, MailkitError):
            self.progress.bar_style = "danger"
            self.status.value = error_html(str(error))
        elif error is not None:
            logger.error("the batch failed", exc_info=error)
            self.progress.bar_style = "danger"
            self.status.value = error_html(
                f"The batch failed: {type(error).__name__}: {error}"
            )
        elif results is not None:
            self.status.value = self._summary_html(results)

    def _summary_html(self, results: pd.DataFrame) -> str:
        stats = summary(results)
        if results.attrs.get("dry_run"):
            built = int(results["error"].eq(DRY_RUN_NOTE).sum())
            text = (
                f"Dry run: {built} of {stats['total']} message(s) built and checked; "
                "nothing was sent and no server was contacted."
            )
            if stats["failed"]:
                return warning_html(
                    f"{text} {stats['failed']} could not be built; see the results "
                    "table."
                )
            return success_html(text)
        counts = ", ".join(
            f"{stats[status]} {status}" for status in STATUSES if stats[status]
        )
        text = (
            f"{stats['total']} row(s): {counts or 'nothing to send'}, in "
            f"{stats['elapsed_s']:.2f} s."
        )
        if results.attrs.get("stop_reason"):
            return warning_html(f"Stopped ({results.attrs['stop_reason']}). {text}")
        if stats["sent"] == stats["total"]:
            return success_html(text)
        return warning_html(text + " See the results table for each row's error.")

    def _show_results(self, results: pd.DataFrame) -> None:
        self.results = results
        counts = {str(k): int(v) for k, v in results["status"].value_counts().items()}
        self.counters.value = _counters_html(counts)
        self.progress.max = max(len(results), 1)
        self.progress.value = len(results)
        self.progress_text.value = f"{len(results)} / {len(results)}"
        if self.progress.bar_style != "danger":
            if results.attrs.get("dry_run"):
                complete = counts.get("failed", 0) == 0
            else:
                complete = counts.get("sent", 0) == len(results)
            self.progress.bar_style = "success" if complete else "warning"
        self.chart.value = results_chart_svg(results)
        self.status_filter.options = [_ALL] + [
            f"{status} ({counts[status]})" for status in STATUSES if counts.get(status)
        ]
        self.status_filter.value = _ALL
        self.status_filter.disabled = False
        self._show_results_table()

    def _show_results_table(self) -> None:
        results = self.results
        if results is None:
            return
        choice = self.status_filter.value or _ALL
        shown = results
        if choice != _ALL:
            shown = results[results["status"] == choice.split(" ")[0]]
        columns = [
            column
            for column in ("to", "status", "smtp_code", "error", "duration_s")
            if column in shown.columns
        ]
        table = shown[columns].copy()
        if "duration_s" in table:
            table["duration_s"] = table["duration_s"].round(3)
        self.results_view.value = frame_html(
            table, caption=f"{len(shown)} of {len(results)} row(s)"
        )
