"""The one-call API: :func:`send_bulk`, :func:`validate` and :func:`preview`."""

from __future__ import annotations

import logging
import os
from typing import Any, Hashable, Iterable, Mapping

import pandas as pd

from . import state
from .compose import MessagePlan, Outgoing
from .config import SMTPConfig, resolve_smtp
from .engine import Engine, ProgressCallback, RetryPolicy
from .errors import ConfigurationError, ValidationError
from .ledger import check_journal_options, open_ledger
from .modes import DEFAULT_MAX_WORKERS, resolve_mode
from .progress import ProgressOption, check_progress_option
from .stop import StopSignal, check_stop_signal
from .resume import key_problems
from .templates import TemplateSource
from .validate import PROBLEM_COLUMNS, find_problems

__all__ = ["preview", "send_bulk", "validate"]

logger = logging.getLogger(__name__)

_MESSAGE_OPTIONS = ("headers",)
_CHECK_OPTIONS = ("allow_empty",)
_RUN_OPTIONS = ("delay", "jitter", "rate", "max_retries", "retry_backoff")


def _check_frame(df: Any) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"send_bulk expects a pandas DataFrame as its first argument, got "
            f"{type(df).__name__}."
        )
    return df


def _check_options(options: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigurationError(
            f"Unknown option(s) {', '.join(unknown)}; the options are "
            f"{', '.join(sorted(allowed))}."
        )


def _plan(
    subject: TemplateSource,
    body: TemplateSource,
    html: TemplateSource | None,
    to: str,
    sender: str,
    options: Mapping[str, Any],
) -> MessagePlan:
    return MessagePlan.build(
        subject=subject,
        body=body,
        html=html,
        sender=sender,
        to=to,
        headers=options.get("headers"),
    )


def _find_all_problems(
    df: pd.DataFrame,
    plan: MessagePlan,
    options: Mapping[str, Any],
    *,
    check_keys: bool = False,
    key: Hashable | None = None,
) -> pd.DataFrame:
    problems = find_problems(df, plan, allow_empty=options.get("allow_empty", False))
    if not check_keys:
        return problems
    extra = key_problems(df, plan, key)
    if not extra:
        return problems
    extra_frame = pd.DataFrame(extra, columns=PROBLEM_COLUMNS)
    if not len(problems):
        return extra_frame
    return pd.concat([problems, extra_frame], ignore_index=True)


def _preflight(
    df: pd.DataFrame,
    plan: MessagePlan,
    options: Mapping[str, Any],
    *,
    check_keys: bool = False,
    key: Hashable | None = None,
) -> None:
    problems = _find_all_problems(df, plan, options, check_keys=check_keys, key=key)
    if len(problems):
        logger.warning("preflight found %d problem(s); nothing was sent", len(problems))
        raise ValidationError(problems)


def validate(
    df: pd.DataFrame,
    *,
    subject: TemplateSource,
    body: TemplateSource,
    html: TemplateSource | None = None,
    to: str = "email",
    sender: str,
    journal: str | os.PathLike | None = None,
    key: Hashable | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Return the problems DataFrame (row, column, problem, value); sends nothing.

    With ``journal`` or ``key``, the row keys are checked as :func:`send_bulk`
    checks them; the journal file itself is not opened.
    """
    _check_options(options, (*_MESSAGE_OPTIONS, *_CHECK_OPTIONS))
    plan = _plan(subject, body, html, to, sender, options)
    check_keys = journal is not None or key is not None
    return _find_all_problems(
        _check_frame(df), plan, options, check_keys=check_keys, key=key
    )


def preview(
    df: pd.DataFrame,
    row: Hashable | None = None,
    *,
    subject: TemplateSource,
    body: TemplateSource,
    html: TemplateSource | None = None,
    to: str = "email",
    sender: str,
    **options: Any,
) -> Outgoing:
    """Return the message for the row with index label ``row`` (the first row when
    None) exactly as :func:`send_bulk` would send it."""
    _check_options(options, (*_MESSAGE_OPTIONS, *_CHECK_OPTIONS))
    df = _check_frame(df)
    if len(df) == 0:
        raise ValueError("The DataFrame has no rows to preview.")
    label = df.index[0] if row is None else row
    if label not in df.index:
        raise KeyError(f"No row with index label {label!r} in the DataFrame.")
    plan = _plan(subject, body, html, to, sender, options)
    subset = df.loc[[label]]
    _preflight(subset, plan, options)
    return plan.compose(label, subset.iloc[0].to_dict())


def send_bulk(
    df: pd.DataFrame,
    *,
    subject: TemplateSource,
    body: TemplateSource,
    html: TemplateSource | None = None,
    to: str = "email",
    sender: str,
    mode: str = "instant",
    max_workers: int = DEFAULT_MAX_WORKERS,
    smtp: str | SMTPConfig | None = None,
    progress: ProgressOption = True,
    progress_callback: ProgressCallback | None = None,
    stop: StopSignal | None = None,
    journal: str | os.PathLike | None = None,
    key: Hashable | None = None,
    retry_unknown: bool = False,
    daily_quota: int | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Send one message per row of ``df`` and return what happened to each row.

    ``subject``, ``body`` and ``html`` are Jinja2 templates (strings, or
    ``pathlib.Path`` objects to template files) that see the row's columns as
    variables and the whole row as ``row``. ``to`` names the column with the
    recipient address(es), several separated by ``,`` or ``;``.

    Modes: ``"instant"`` sends over ``max_workers`` connections in parallel,
    ``"fast"`` over one connection without pauses, ``"safe"`` over one
    connection with a pause of ``delay`` seconds (default 1) plus up to
    ``jitter`` seconds between messages. ``rate`` caps messages per second over
    all connections in any mode.

    Other options: ``headers`` (a dict of extra header templates),
    ``allow_empty`` (True, or column names whose blank cells may print as
    nothing), ``max_retries`` and ``retry_backoff`` (seconds) for temporary
    failures before the hand-over.

    ``progress_callback(done, total, row)`` is called in the calling thread
    after each row, with the row's result as a dict. ``stop`` takes a
    :class:`~mailkit.StopToken` (or a :class:`threading.Event`) that another
    thread can set to end the batch early: no new message starts, and the rows
    not sent come back with status ``skipped``.

    ``journal`` names an SQLite file that records each row before and after it
    is handed to the server. Running the same call again with the same journal
    sends only the rows not sent yet: rows the journal records as ``sent`` or
    ``partial`` come back ``skipped``, and rows whose outcome is unknown come
    back ``unknown`` unless ``retry_unknown=True``, which sends them again with
    their recorded Message-ID. A row is identified by the value in its ``key``
    column, or else by its recipients, so reordering or extending the
    DataFrame sends no row twice. Another batch using the same journal raises
    :class:`~mailkit.JournalLockedError` before anything is sent.
    ``daily_quota`` caps the messages handed over in any 24 hours, counting
    earlier runs recorded in the journal (without a journal, this run only);
    when it is reached the run stops and the rest come back ``skipped``.

    Every row is checked before the first connection; problems raise
    :class:`~mailkit.ValidationError` and nothing is sent. The returned
    DataFrame has the same index as ``df`` and the columns ``to``, ``status``,
    ``smtp_code``, ``smtp_reply``, ``error``, ``message_id``, ``attempts``,
    ``started_at``, ``finished_at``, ``duration_s`` and ``refused``.
    """
    _check_options(options, (*_MESSAGE_OPTIONS, *_CHECK_OPTIONS, *_RUN_OPTIONS))
    df = _check_frame(df)
    stop = check_stop_signal(stop)
    check_progress_option(progress)
    settings = resolve_mode(
        mode,
        max_workers=max_workers,
        delay=options.get("delay"),
        jitter=options.get("jitter", 0.0),
        rate=options.get("rate"),
    )
    retry = RetryPolicy(
        max_retries=options.get("max_retries", RetryPolicy.max_retries),
        backoff=options.get("retry_backoff", RetryPolicy.backoff),
    )
    check_journal_options(journal, key, retry_unknown, daily_quota)
    config = resolve_smtp(smtp)
    plan = _plan(subject, body, html, to, sender, options)
    _preflight(df, plan, options, check_keys=journal is not None, key=key)
    ledger = open_ledger(
        df,
        plan,
        journal=journal,
        key=key,
        retry_unknown=retry_unknown,
        daily_quota=daily_quota,
    )
    engine = Engine(
        df,
        plan,
        config,
        settings,
        retry=retry,
        progress=progress,
        progress_callback=progress_callback,
        stop=stop,
        ledger=ledger,
    )
    try:
        results = engine.run()
    except BaseException as exc:
        state.last_results = getattr(exc, "results", state.last_results)
        ledger.close_after_error(exc)
        raise
    state.last_results = results
    ledger.close(results.attrs.get("stop_reason") or "finished")
    return results
