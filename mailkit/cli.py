"""The ``mailkit`` command: ``demo``, ``send`` and ``serve``."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import __version__
from .api import send_bulk
from .barlog import StderrBarHandler
from .errors import MailkitError, ValidationError
from .modes import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_WORKERS,
    DEFAULT_MODE,
    DEFAULT_SAFE_DELAY,
    MODES,
)
from .providers import PROVIDERS
from .readers import read_table
from .results import STATUSES, summary
from .server import LocalSMTPServer

__all__ = ["main"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_SENDER = "Accounts team <accounts@example.com>"


class CommandError(Exception):
    """A problem the command reports in one line, without a traceback."""


def _port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from exc
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: use 0 to 65535")
    return port


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from exc
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"invalid duration {text}: give seconds above 0")
    return seconds


def read_recipients(path: Path) -> pd.DataFrame:
    """Read a CSV with every column as text, so that codes such as 007 stay as written."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def _print_summary(results: pd.DataFrame) -> dict:
    stats = summary(results)
    counts = ", ".join(f"{stats[status]} {status}" for status in STATUSES if stats[status])
    print(f"{stats['total']} rows: {counts or 'nothing sent'}")
    print(
        f"elapsed {stats['elapsed_s']:.2f} s, "
        f"{stats['messages_per_second']:.1f} messages per second"
    )
    not_sent = results[results["status"] != "sent"]
    for label, row in not_sent.head(10).iterrows():
        print(f"  row {label!r} ({row['to']}): {row['status']}: {row['error']}")
    return stats


def _demo(args: argparse.Namespace) -> int:
    examples = Path(args.examples)
    maildir = Path(args.maildir) if args.maildir else Path(tempfile.mkdtemp(prefix="mailkit-demo-"))
    df = read_recipients(examples / "recipients.csv")
    with LocalSMTPServer(maildir=maildir) as server:
        print(f"capture server listening on {server.url}")
        print(f"sending {len(df)} rows from {examples / 'recipients.csv'} in instant mode")
        results = send_bulk(
            df,
            subject=examples / "subject.txt",
            body=examples / "body.txt",
            html=examples / "body.html",
            sender=DEMO_SENDER,
            smtp=server.url,
            mode="instant",
            max_workers=args.workers,
            progress=not args.no_progress and "text",
        )
        received = len(server.messages)
    stats = _print_summary(results)
    print(f"the capture server received {received} messages, stored in Maildir {maildir}")
    return 0 if stats["sent"] == len(df) else 1


def _load_table(path: Path) -> pd.DataFrame:
    """Read the recipients file, turning read errors into one-line messages."""
    try:
        return read_table(path)
    except FileNotFoundError as exc:
        raise CommandError(f"The file {str(path)!r} was not found.") from exc
    except UnicodeDecodeError as exc:
        raise CommandError(
            f"{str(path)!r} is not UTF-8 text (byte {exc.start}): save it as "
            "CSV UTF-8, or as .xlsx."
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise CommandError(f"{str(path)!r} is empty: it needs a header row.") from exc
    except (pd.errors.ParserError, OSError) as exc:
        raise CommandError(f"Cannot read {str(path)!r}: {exc}") from exc


def _send(args: argparse.Namespace) -> int:
    df = _load_table(Path(args.table))
    options = {
        name: getattr(args, name)
        for name in (
            "delay",
            "rate",
            "provider",
            "max_connections",
            "cc",
            "bcc",
            "reply_to",
            "attachments",
            "journal",
            "key",
        )
        if getattr(args, name) is not None
    }
    if args.allow_empty:
        options["allow_empty"] = args.allow_empty
    if args.retry_unknown:
        options["retry_unknown"] = True
    if args.dry_run:
        options["dry_run"] = True
    subject = Path(args.subject) if Path(args.subject).is_file() else args.subject
    results = send_bulk(
        df,
        subject=subject,
        body=Path(args.body),
        html=Path(args.html) if args.html else None,
        to=args.to,
        sender=args.sender,
        mode=args.mode,
        max_workers=args.workers,
        smtp=args.smtp,
        progress=not args.no_progress and "text",
        **options,
    )
    if args.results:
        results.to_csv(args.results)
        print(f"results written to {args.results}")
    stats = _print_summary(results)
    if args.dry_run:
        return 0 if stats["failed"] == 0 else 1
    # Rows that an earlier run with the same journal sent count as done.
    done = stats["sent"] + results.attrs.get("already_sent", 0)
    return 0 if done == len(df) else 1


def _print_received(server: LocalSMTPServer, seen: int) -> int:
    messages = server.messages
    for message in messages[seen:]:
        recipients = ", ".join(message.recipients)
        print(
            f"received from {message.envelope_from} to {recipients}"
            f" ({len(message.data)} bytes)",
            flush=True,
        )
    return len(messages)


def _serve(args: argparse.Namespace) -> int:
    server = LocalSMTPServer(maildir=args.maildir, port=args.port)
    try:
        server.start()
    except OSError as exc:
        raise CommandError(
            f"Cannot listen on 127.0.0.1:{args.port}: {exc.strerror}. Pick another "
            "port with --port, or --port 0 for a free one."
        ) from exc
    print(f"capture server listening on {server.url}; press Ctrl-C to stop", flush=True)
    if args.maildir:
        print(f"messages are stored in Maildir {args.maildir}", flush=True)
    deadline = time.monotonic() + args.duration if args.duration else None
    seen = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
            seen = _print_received(server, seen)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    seen = _print_received(server, seen)
    print(f"stopped after {seen} message(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailkit", description="Send one personalised email per row of a table."
    )
    parser.add_argument("--version", action="version", version=f"mailkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each retry and failure")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="send the example recipients to a local capture server"
    )
    demo.add_argument("--examples", default=str(EXAMPLES), help="folder with recipients.csv and the templates")
    demo.add_argument("--maildir", help="Maildir folder for the captured messages (default: a new temporary folder)")
    demo.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_MAX_WORKERS,
        help=f"connections in parallel (default: {DEFAULT_MAX_WORKERS})",
    )
    demo.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    demo.set_defaults(handler=_demo)

    send = commands.add_parser(
        "send",
        help="send one message per row of a .csv, .tsv or .xlsx file",
        description="Send one message per row. The defaults are those of "
        f"mailkit.send_bulk: {DEFAULT_MODE} mode over up to {DEFAULT_MAX_WORKERS} "
        "connections in parallel. For a first run against a real server, "
        "--mode safe sends over one connection with a pause of --delay seconds "
        f"(default: {DEFAULT_SAFE_DELAY:g}) between messages.",
    )
    send.add_argument("table", help="recipients: .csv or .tsv (UTF-8) or .xlsx, read as text")
    send.add_argument("--subject", required=True, help="subject template, or a file that contains it")
    send.add_argument("--body", required=True, help="text body template file (.md for Markdown)")
    send.add_argument("--html", help="HTML body template file")
    send.add_argument("--to", default="email", help="column with the recipient addresses (default: email)")
    send.add_argument("--cc", help="Cc: a column name, a template, or fixed addresses")
    send.add_argument("--bcc", help="Bcc: a column name, a template, or fixed addresses")
    send.add_argument("--reply-to", dest="reply_to", help="Reply-To: a column name, a template, or a fixed address")
    send.add_argument("--attachments", help="column with file paths to attach, separated by ; or line breaks")
    send.add_argument("--allow-empty", dest="allow_empty", action="append", metavar="COLUMN", help="let blank cells of COLUMN print as nothing (repeatable)")
    send.add_argument("--sender", required=True, help="From address, for example 'Name <me@example.com>'")
    send.add_argument("--smtp", help="server URL such as smtp+starttls://user@host:587 (default: $MAILKIT_SMTP_URL); the password comes from $MAILKIT_SMTP_PASSWORD")
    send.add_argument(
        "--mode",
        choices=MODES,
        default=DEFAULT_MODE,
        help="sending mode: instant (parallel connections), fast (one connection, "
        "no pauses) or safe (one connection, a pause between messages) "
        f"(default: {DEFAULT_MODE})",
    )
    send.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_MAX_WORKERS,
        help="connections in parallel in instant mode, at most --max-connections "
        f"(default: {DEFAULT_MAX_WORKERS})",
    )
    send.add_argument(
        "--delay",
        type=float,
        help=f"seconds between messages in safe mode (default: {DEFAULT_SAFE_DELAY:g})",
    )
    send.add_argument("--rate", help="maximum messages over all connections: per second, or with a unit such as 30/min")
    send.add_argument(
        "--provider",
        help="apply a provider's connection cap, rate and daily quota: "
        f"{', '.join(PROVIDERS)}",
    )
    send.add_argument(
        "--max-connections",
        dest="max_connections",
        type=int,
        help="maximum concurrent SMTP sessions "
        f"(default: {DEFAULT_MAX_CONNECTIONS}, or the provider's cap)",
    )
    send.add_argument("--journal", help="SQLite journal file: a second run sends only the rows not sent yet")
    send.add_argument("--key", help="column that identifies a row in the journal (default: the recipients)")
    send.add_argument("--retry-unknown", dest="retry_unknown", action="store_true", help="send again the rows whose outcome the journal records as unknown")
    send.add_argument("--dry-run", dest="dry_run", action="store_true", help="build and check every message, connect to nothing")
    send.add_argument("--results", help="write the results table to this CSV file")
    send.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    send.set_defaults(handler=_send)

    serve = commands.add_parser("serve", help="run the local capture SMTP server on 127.0.0.1")
    serve.add_argument("--port", type=_port_number, default=1025, help="port on 127.0.0.1 (default: 1025; 0 picks a free one)")
    serve.add_argument("--maildir", help="store each message in this Maildir folder")
    serve.add_argument("--duration", type=_positive_seconds, help="stop after this many seconds (default: run until Ctrl-C)")
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        handlers=[StderrBarHandler()],
    )
    try:
        return args.handler(args)
    except ValidationError as exc:
        print(f"mailkit: {len(exc.problems)} problem(s) found; nothing was sent:",
              file=sys.stderr)
        print(exc.problems.head(50).to_string(index=False), file=sys.stderr)
        if len(exc.problems) > 50:
            print(f"... and {len(exc.problems) - 50} more.", file=sys.stderr)
        return 2
    except (MailkitError, CommandError) as exc:
        print(f"mailkit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
