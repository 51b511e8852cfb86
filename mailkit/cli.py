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
from .errors import MailkitError
from .results import STATUSES, summary
from .server import LocalSMTPServer

__all__ = ["main"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_SENDER = "Accounts team <accounts@example.com>"


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


def _send(args: argparse.Namespace) -> int:
    df = read_recipients(Path(args.csv))
    options = {}
    if args.delay is not None:
        options["delay"] = args.delay
    if args.rate is not None:
        options["rate"] = args.rate
    results = send_bulk(
        df,
        subject=Path(args.subject) if Path(args.subject).is_file() else args.subject,
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
    return 0 if stats["sent"] == len(df) else 1


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
    server.start()
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
    demo.add_argument("--workers", type=int, default=10, help="connections in parallel (default 10)")
    demo.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    demo.set_defaults(handler=_demo)

    send = commands.add_parser("send", help="send one message per row of a CSV file")
    send.add_argument("csv", help="CSV file, UTF-8, one recipient per row")
    send.add_argument("--subject", required=True, help="subject template, or a file that holds it")
    send.add_argument("--body", required=True, help="text body template file")
    send.add_argument("--html", help="HTML body template file")
    send.add_argument("--to", default="email", help="column with the recipient addresses (default email)")
    send.add_argument("--sender", required=True, help="From address, for example 'Name <me@example.com>'")
    send.add_argument("--smtp", help="server URL such as smtp+starttls://user@host:587 (default: $MAILKIT_SMTP_URL); the password comes from $MAILKIT_SMTP_PASSWORD")
    send.add_argument("--mode", choices=("instant", "fast", "safe"), default="safe", help="sending mode (default safe)")
    send.add_argument("--workers", type=int, default=3, help="connections in instant mode (default 3)")
    send.add_argument("--delay", type=float, help="seconds between messages in safe mode (default 1)")
    send.add_argument("--rate", type=float, help="maximum messages per second over all connections")
    send.add_argument("--results", help="write the results table to this CSV file")
    send.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    send.set_defaults(handler=_send)

    serve = commands.add_parser("serve", help="run the local capture SMTP server on 127.0.0.1")
    serve.add_argument("--port", type=int, default=1025, help="port on 127.0.0.1 (default 1025; 0 picks a free one)")
    serve.add_argument("--maildir", help="store each message in this Maildir folder")
    serve.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except MailkitError as exc:
        print(f"mailkit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
