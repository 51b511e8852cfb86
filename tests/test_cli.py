"""The mailkit command, run as a subprocess as a user would."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
from pathlib import Path

import mailkit
from mailkit.cli import build_parser
from mailkit.providers import PROVIDERS

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("MAILKIT_SMTP_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "mailkit.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
    )


def test_demo_sends_all_rows(tmp_path):
    maildir = tmp_path / "captured"
    done = _run("demo", "--maildir", str(maildir), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "100 rows: 100 sent" in done.stdout
    assert "messages per second" in done.stdout
    assert str(maildir) in done.stdout
    assert len(list((maildir / "new").iterdir())) == 100


def test_send_without_server_explains(tmp_path):
    csv = tmp_path / "people.csv"
    csv.write_text("email\na@example.com\n", encoding="utf-8")
    body = tmp_path / "body.txt"
    body.write_text("Hello", encoding="utf-8")
    done = _run("send", str(csv), "--subject", "Hi", "--body", str(body), "--sender", "me@example.com")
    assert done.returncode == 2
    assert "No SMTP server is configured" in done.stderr


def test_serve_then_send(tmp_path):
    csv = tmp_path / "people.csv"
    csv.write_text("email,name\na@example.com,Ann\nb@example.com,Bo\n", encoding="utf-8")
    body = tmp_path / "body.txt"
    body.write_text("Hello {{ name }}", encoding="utf-8")
    server = subprocess.Popen(
        [sys.executable, "-m", "mailkit.cli", "serve", "--port", "0", "--duration", "60"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        first = server.stdout.readline()
        url = first.split()[4].rstrip(";")
        done = _run("send", str(csv), "--subject", "Hi {{ name }}", "--body", str(body),
                    "--sender", "me@example.com", "--smtp", url, "--mode", "fast",
                    "--results", str(tmp_path / "results.csv"), "--no-progress")
        assert done.returncode == 0, done.stderr
        assert "2 rows: 2 sent" in done.stdout
        assert (tmp_path / "results.csv").read_text().count("sent") == 2
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=10)
    assert "received from me@example.com to a@example.com" in out
    assert "stopped after 2 message(s)" in out
    assert server.returncode == 0


def test_send_reports_file_errors_in_one_line(tmp_path):
    body = tmp_path / "body.txt"
    body.write_text("Hello", encoding="utf-8")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("email,name\na@example.com,J\xfcrgen\n".encode("latin-1"))
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    cases = [
        (tmp_path / "missing.csv", "was not found"),
        (latin1, "is not UTF-8"),
        (empty, "is empty"),
    ]
    for path, message in cases:
        done = _run("send", str(path), "--subject", "Hi", "--body", str(body),
                    "--sender", "me@example.com", "--smtp", "smtp://127.0.0.1:1")
        assert done.returncode == 2, path
        assert message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_send_prints_problem_table(tmp_path):
    csv = tmp_path / "people.csv"
    csv.write_text("email,name\nnot-an-address,Ann\nb@example.com,\n", encoding="utf-8")
    body = tmp_path / "body.txt"
    body.write_text("Hello {{ name }}", encoding="utf-8")
    done = _run("send", str(csv), "--subject", "Hi", "--body", str(body),
                "--sender", "me@example.com", "--smtp", "smtp://127.0.0.1:1")
    assert done.returncode == 2
    assert "2 problem(s) found; nothing was sent" in done.stderr
    assert "not-an-address" in done.stderr
    assert "Traceback" not in done.stderr


def test_send_dry_run_connects_to_nothing(tmp_path):
    csv = tmp_path / "people.csv"
    csv.write_text("email,name\na@example.com,Ann\n", encoding="utf-8")
    body = tmp_path / "body.txt"
    body.write_text("Hello {{ name }}", encoding="utf-8")
    done = _run("send", str(csv), "--subject", "Hi", "--body", str(body),
                "--sender", "me@example.com", "--smtp", "smtp://127.0.0.1:1", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "1 skipped" in done.stdout


def test_serve_rejects_invalid_port_and_duration():
    for args, message in (
        (["--port", "70000"], "invalid port 70000"),
        (["--duration", "0"], "invalid duration 0"),
    ):
        done = _run("serve", *args, timeout=30)
        assert done.returncode == 2
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_serve_port_in_use(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run("serve", "--port", str(port), "--duration", "1", timeout=30)
    assert done.returncode == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def _send_bulk_default(name: str):
    return inspect.signature(mailkit.send_bulk).parameters[name].default


def test_send_defaults_match_send_bulk():
    args = build_parser().parse_args(
        ["send", "people.csv", "--subject", "Hi", "--body", "b.txt", "--sender", "a@b.c"]
    )
    assert args.mode == _send_bulk_default("mode")
    assert args.workers == _send_bulk_default("max_workers")
    assert args.to == _send_bulk_default("to")


def test_send_help_states_defaults():
    done = _run("send", "--help", timeout=30)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert f"(default: {_send_bulk_default('mode')})" in text
    assert f"(default: {_send_bulk_default('max_workers')})" in text
    assert "safe mode, one message per second" not in text


def test_send_uses_api_default_mode(tmp_path, server):
    csv = tmp_path / "people.csv"
    csv.write_text("email\na@example.com\nb@example.com\nc@example.com\n", encoding="utf-8")
    body = tmp_path / "body.txt"
    body.write_text("Hello", encoding="utf-8")
    done = _run("-v", "send", str(csv), "--subject", "Hi", "--body", str(body),
                "--sender", "me@example.com", "--smtp", server.url, "--no-progress")
    assert done.returncode == 0, done.stderr
    mode = _send_bulk_default("mode")
    workers = _send_bulk_default("max_workers")
    assert f"in {mode} mode with up to {workers} connection(s)" in done.stderr
    assert "3 rows: 3 sent" in done.stdout
    assert len(server.messages) == 3


def test_send_again_with_journal_sends_nothing_and_succeeds(tmp_path, server):
    csv = tmp_path / "people.csv"
    csv.write_text("email\na@example.com\nb@example.com\n", encoding="utf-8")
    body = tmp_path / "body.txt"
    body.write_text("Hello", encoding="utf-8")
    command = ("send", str(csv), "--subject", "Hi", "--body", str(body),
               "--sender", "me@example.com", "--smtp", server.url, "--no-progress",
               "--journal", str(tmp_path / "sent.sqlite"))
    first = _run(*command)
    second = _run(*command)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "2 rows: 2 skipped" in second.stdout
    assert "journal records it as sent" in second.stdout
    assert len(server.messages) == 2


def test_send_help_lists_every_provider():
    done = _run("send", "--help", timeout=30)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for name in PROVIDERS:
        assert name in text, name


def test_send_attachments_split_as_help_says(tmp_path, server):
    (tmp_path / "a.txt").write_text("one", encoding="utf-8")
    (tmp_path / "b.txt").write_text("two", encoding="utf-8")
    csv = tmp_path / "people.csv"
    csv.write_text(
        f'email,files\na@example.com,"{tmp_path / "a.txt"};{tmp_path / "b.txt"}"\n',
        encoding="utf-8",
    )
    body = tmp_path / "body.txt"
    body.write_text("Hello", encoding="utf-8")
    help_text = " ".join(_run("send", "--help", timeout=30).stdout.split())
    done = _run("send", str(csv), "--subject", "Hi", "--body", str(body),
                "--sender", "me@example.com", "--smtp", server.url, "--no-progress",
                "--attachments", "files")

    assert "separated by ; or line breaks" in help_text
    assert done.returncode == 0, done.stderr
    assert len(server.messages) == 1
    data = server.messages[0].data
    assert b'filename="a.txt"' in data
    assert b'filename="b.txt"' in data
