"""The one-call API: :func:`send_bulk`, :func:`validate` and :func:`preview`."""

from __future__ import annotations

import logging
import os
from typing import Any, Hashable, Iterable, Mapping

import numpy as np
import pandas as pd

from . import state
from .batch import dry_run, merge_skipped
from .capabilities import ServerCapabilities
from .compose import MessagePlan
from .config import SMTPConfig, resolve_smtp
from .engine import Engine, ProgressCallback, RetryPolicy
from .errors import ConfigurationError, JournalError, ValidationError
from .ledger import check_journal_options, open_ledger
from .modes import DEFAULT_MAX_WORKERS, DEFAULT_MODE, RunSettings, resolve_mode
from .progress import ProgressOption, check_progress_option
from .providers import ProviderPreset, get_provider, provider_for_host
from .stop import StopSignal, check_stop_signal
from .preview import Preview
from .resume import key_problems
from .templates import TemplateSource
from .validate import PROBLEM_COLUMNS, Preflight, check_rows, index_problems

__all__ = ["preview", "send_bulk", "validate"]

logger = logging.getLogger(__name__)

_MESSAGE_OPTIONS = (
    "headers",
    "cc",
    "bcc",
    "reply_to",
    "to_name",
    "cc_name",
    "reply_to_name",
    "markdown",
    "attachments",
    "attachment_types",
    "inline_images",
    "fill_empty",
    "max_message_size",
    "unsubscribe_url",
    "unsubscribe_mailto",
)
_CHECK_OPTIONS = ("allow_empty", "skip_empty", "duplicates")
_RUN_OPTIONS = (
    "delay",
    "jitter",
    "rate",
    "burst",
    "max_connections",
    "max_messages_per_connection",
    "adaptive",
    "provider",
    "max_retries",
    "retry_backoff",
    "dry_run",
)
_PREVIEW_OPTIONS = ("smtputf8", "message_id", "date")


def _check_frame(df: Any, function: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"{function} expects a pandas DataFrame as its first argument, got "
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
    body: TemplateSource | None,
    html: TemplateSource | None,
    to: Any,
    sender: str,
    options: Mapping[str, Any],
) -> MessagePlan:
    return MessagePlan.build(
        subject=subject,
        body=body,
        html=html,
        sender=sender,
        to=to,
        **{name: options[name] for name in _MESSAGE_OPTIONS if name in options},
    )


def _preset(options: Mapping[str, Any], config: SMTPConfig) -> ProviderPreset | None:
    """Return the provider preset: the provider= option, the config's, or the host's."""
    name = options.get("provider") or config.provider
    if name:
        return get_provider(name)
    return provider_for_host(config.host)


def _run_settings(
    mode: str,
    max_workers: int,
    options: Mapping[str, Any],
    preset: ProviderPreset | None,
) -> RunSettings:
    max_connections = options.get("max_connections")
    if max_connections is None and preset is not None:
        max_connections = preset.max_connections
    return resolve_mode(
        mode,
        max_workers=max_workers,
        max_connections=max_connections,
        delay=options.get("delay"),
        jitter=options.get("jitter", 0.0),
        rate=options.get("rate"),
        burst=options.get("burst", 1),
        adaptive=options.get("adaptive", True),
        max_messages_per_connection=options.get("max_messages_per_connection"),
        default_rate=preset.rate if preset is not None else None,
    )


def _preset_metadata(preset: ProviderPreset | None, rows: int) -> dict[str, Any]:
    if preset is None:
        return {"provider": None}
    if preset.daily_quota is not None and rows > preset.daily_quota:
        logger.warning(
            "%d rows exceed the daily quota of %d messages for %s; the run stops "
            "there and the rest come back skipped (pass daily_quota= for an "
            "account with another quota)",
            rows,
            preset.daily_quota,
            preset.name,
        )
    return {"provider": preset.name}


def _check(
    df: pd.DataFrame,
    plan: MessagePlan,
    options: Mapping[str, Any],
    *,
    check_keys: bool = False,
    key: Hashable | None = None,
) -> Preflight:
    report = check_rows(
        df,
        plan,
        allow_empty=options.get("allow_empty", False),
        skip_empty=options.get("skip_empty", ()),
        duplicates=options.get("duplicates", "report"),
    )
    if check_keys:
        sent = df.iloc[[i for i in range(len(df)) if i not in report.skipped]]
        extra = key_problems(sent, plan, key)
        if extra:
            extra_frame = pd.DataFrame(extra, columns=PROBLEM_COLUMNS)
            report.problems = (
                pd.concat([report.problems, extra_frame], ignore_index=True)
                if len(report.problems)
                else extra_frame
            )
    return report


def _preflight(
    df: pd.DataFrame,
    plan: MessagePlan,
    options: Mapping[str, Any],
    *,
    check_keys: bool = False,
    key: Hashable | None = None,
) -> Preflight:
    report = _check(df, plan, options, check_keys=check_keys, key=key)
    if len(report.problems):
        logger.warning(
            "preflight found %d problem(s); nothing was sent", len(report.problems)
        )
        raise ValidationError(report.problems)
    if report.skipped:
        logger.info("preflight skips %d row(s)", len(report.skipped))
    return report


def validate(
    df: pd.DataFrame,
    *,
    subject: TemplateSource,
    body: TemplateSource | None = None,
    html: TemplateSource | None = None,
    to: Any = "email",
    sender: str,
    journal: str | os.PathLike | None = None,
    key: Hashable | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Return the problems DataFrame (row, column, problem, value); sends nothing.

    Takes the message and check options of :func:`send_bulk`. With ``journal``
    or ``key``, the row keys are checked as :func:`send_bulk` checks them; the
    journal file itself is not opened.
    """
    _check_options(options, (*_MESSAGE_OPTIONS, *_CHECK_OPTIONS))
    df = _check_frame(df, "validate")
    plan = _plan(subject, body, html, to, sender, options)
    check_keys = journal is not None or key is not None
    return _check(df, plan, options, check_keys=check_keys, key=key).problems


def preview(
    df: pd.DataFrame,
    row: Hashable | None = None,
    *,
    subject: TemplateSource,
    body: TemplateSource | None = None,
    html: TemplateSource | None = None,
    to: Any = "email",
    sender: str,
    **options: Any,
) -> Preview:
    """Return the message of the row with index label ``row`` (the first row when
    None) exactly as :func:`send_bulk` would send it.

    Takes the message and check options of :func:`send_bulk`, and these:
    ``smtputf8`` (build it as for a server that offers SMTPUTF8; default False),
    ``message_id`` and ``date`` (use these instead of a new Message-ID and the
    current time, to reproduce the bytes of a message that was sent).
    Raises ValidationError when preflight finds a problem in the row.
    """
    _check_options(options, (*_MESSAGE_OPTIONS, *_CHECK_OPTIONS, *_PREVIEW_OPTIONS))
    df = _check_frame(df, "preview")
    if len(df) == 0:
        raise ValueError("The DataFrame has no rows to preview.")
    repeated_labels = index_problems(df)
    if len(repeated_labels):
        raise ValidationError(repeated_labels)
    label = df.index[0] if row is None else row
    if label not in df.index:
        raise KeyError(f"No row with index label {label!r} in the DataFrame.")
    plan = _plan(subject, body, html, to, sender, options)
    plan = plan.with_server(ServerCapabilities(smtputf8=bool(options.get("smtputf8"))))
    subset = df.loc[[label]]
    report = _preflight(subset, plan, options)
    if report.skipped:
        raise ValueError(f"Row {label!r} is not sent: {report.skipped[0]}.")
    outgoing = plan.compose(
        label,
        subset.iloc[0].to_dict(),
        message_id=options.get("message_id"),
        date=options.get("date"),
    )
    return Preview(label, outgoing)


def send_bulk(
    df: pd.DataFrame,
    *,
    subject: TemplateSource,
    body: TemplateSource | None = None,
    html: TemplateSource | None = None,
    to: Any = "email",
    sender: str,
    mode: str = DEFAULT_MODE,
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

    Modes: ``"instant"`` sends over up to ``max_workers`` connections in
    parallel (at most ``max_connections``, default 10), each logged in once
    and reused; ``"fast"`` over one connection without pauses; ``"safe"`` over
    one connection with a pause of ``delay`` seconds (default 1) plus up to
    ``jitter`` seconds between messages. ``rate`` caps the messages per second
    over all connections together in any mode: a number, or a string such as
    ``"30/min"``; ``burst`` messages may start back to back (default 1).

    Limits: ``provider`` (a name in :data:`mailkit.providers.PROVIDERS`, such
    as ``"gmail"``, ``"microsoft365"`` or ``"ses"``) applies that provider's
    connection cap and rate from :mod:`mailkit.providers`, and its daily quota
    as the default of ``daily_quota``; known hosts such as smtp.office365.com
    select their preset by themselves.
    ``adaptive`` (default True) closes connections and pauses when the server
    throttles (421, 454, refused sessions) and opens them again gradually.
    ``max_messages_per_connection`` opens a new connection after that many
    messages.

    Retries: temporary failures (4xx, a lost connection) before the message is
    handed over are retried ``max_retries`` times (default 3) after
    ``retry_backoff`` seconds (default 1), doubling each time, with jitter; then
    the row is ``deferred``. A row whose outcome is ``unknown`` (the connection
    was lost after the final ".") is never sent again by this run; with a
    ``journal``, a later run with ``retry_unknown=True`` resends it with the
    same Message-ID. A quota reply (such as "550 5.4.5 Daily sending quota
    exceeded") stops the run with :class:`~mailkit.BatchStopped`; its
    ``.results`` mark the rows not sent ``deferred`` or ``skipped``.

    Message options: ``headers`` (a dict of extra header templates); ``cc``,
    ``bcc`` and ``reply_to`` (a column name, a template, or fixed addresses
    written with "@"); ``to_name``, ``cc_name`` and ``reply_to_name`` (columns
    of display names); ``markdown`` (the body is Markdown and makes the HTML
    part too; on by default for a ``.md`` path); ``attachments`` (a column or
    template giving paths separated by ``;``, or a list of paths);
    ``attachment_types`` (a dict from extension to content type, or a column of
    types); ``inline_images`` (a dict from name to path, shown by the HTML body
    with ``<img src="cid:name">``); ``max_message_size`` (bytes);
    ``unsubscribe_url`` and ``unsubscribe_mailto`` (a column, template or fixed
    value for List-Unsubscribe, with one-click List-Unsubscribe-Post for an
    https URL). Bcc addresses go only into RCPT TO.

    Check options: blank cells that a template uses are problems unless the
    column is in ``allow_empty`` (True, or column names; print nothing),
    ``fill_empty`` (a dict from column to default) or ``skip_empty`` (column
    names; such rows are skipped). ``duplicates`` says what happens to a row
    whose To address an earlier row has: "report" (a problem; the default),
    "skip" or "allow".

    Run options: ``dry_run=True`` builds and checks every
    message and connects to no server: rows that build come back with status
    ``skipped`` and the note "Dry run: ..." in ``error``, rows that cannot be
    built with status ``failed``, and ``results.attrs["dry_run"]`` is True.

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
    :class:`~mailkit.ValidationError` and nothing is sent; an index that
    repeats a label is such a problem. The returned
    DataFrame has the same index as ``df`` and the columns ``to``, ``status``,
    ``smtp_code``, ``smtp_reply``, ``error``, ``message_id``, ``attempts``,
    ``started_at``, ``finished_at``, ``duration_s``, ``refused`` and
    ``attachments`` (each attached file as "name (type, N bytes)").
    """
    # A call that raises before any row has a status leaves None, never the
    # results of an earlier call.
    state.last_results = None
    _check_options(options, (*_MESSAGE_OPTIONS, *_CHECK_OPTIONS, *_RUN_OPTIONS))
    df = _check_frame(df, "send_bulk")
    stop = check_stop_signal(stop)
    check_progress_option(progress)
    named = get_provider(options["provider"]) if options.get("provider") else None
    settings = _run_settings(mode, max_workers, options, named)
    retry = RetryPolicy(
        max_retries=options.get("max_retries", RetryPolicy.max_retries),
        backoff=options.get("retry_backoff", RetryPolicy.backoff),
    )
    check_journal_options(journal, key, retry_unknown, daily_quota)
    plan = _plan(subject, body, html, to, sender, options)
    dry = options.get("dry_run", False)
    if not isinstance(dry, (bool, np.bool_)):
        # dry_run="no" would otherwise count as True and send nothing.
        raise ConfigurationError(
            f"Invalid dry_run={dry!r}: give True or False (a bool, not "
            f"{type(dry).__name__})."
        )
    if dry:
        # A dry run checks the row keys too, but never opens the journal.
        report = _preflight(df, plan, options, check_keys=journal is not None, key=key)
        results = dry_run(df, plan, report.skipped, settings.mode)
        state.last_results = results
        return results
    config = resolve_smtp(smtp)
    preset = _preset(options, config)
    if preset is not named:
        settings = _run_settings(mode, max_workers, options, preset)
    if daily_quota is None and preset is not None:
        daily_quota = preset.daily_quota
    report = _preflight(df, plan, options, check_keys=journal is not None, key=key)
    send_positions = [i for i in range(len(df)) if i not in report.skipped]
    to_send = df.iloc[send_positions] if report.skipped else df
    ledger = open_ledger(
        to_send,
        plan,
        journal=journal,
        key=key,
        retry_unknown=retry_unknown,
        daily_quota=daily_quota,
    )
    engine = Engine(
        to_send,
        plan,
        config,
        settings,
        retry=retry,
        progress=progress,
        progress_callback=progress_callback,
        stop=stop,
        ledger=ledger,
        metadata=_preset_metadata(preset, len(to_send)),
    )
    try:
        results = merge_skipped(df, plan, report.skipped, engine.run())
    except BaseException as exc:
        partial = getattr(exc, "results", None)
        if partial is not None:
            partial = merge_skipped(df, plan, report.skipped, partial)
            exc.results = partial  # type: ignore[attr-defined]
        state.last_results = partial
        ledger.close_after_error(exc)
        raise
    state.last_results = results
    try:
        ledger.close(results.attrs.get("stop_reason") or "finished")
    except JournalError as exc:
        exc.results = results  # type: ignore[attr-defined]
        raise
    return results
