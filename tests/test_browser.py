"""The forms in a real browser: JupyterLab and Notebook 7 in Debian's chromium.

The test starts a capture SMTP server and a Jupyter server on 127.0.0.1 as
subprocesses, opens a copy of notebooks/widgets.ipynb with Playwright, runs
it, fills the form, presses Send and checks what the capture server stored.
Screenshots go to test-output/. Playwright drives /usr/bin/chromium, which
.ci/system-packages installs; it never downloads a browser of its own.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "example-secret-123"
# Seconds the helper servers live at most; each stops by itself after that.
SERVER_LIFETIME_S = 300
WAIT_MS = 60_000

pytestmark = [pytest.mark.browser, pytest.mark.timeout(SERVER_LIFETIME_S)]

# JavaScript that is true once the current notebook's kernel is idle.
KERNEL_IDLE = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const session = panel && panel.sessionContext && panel.sessionContext.session;
    return Boolean(session && session.kernel && session.kernel.status === "idle");
}"""


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing; run .ci/system-packages to install Debian's chromium"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _subprocess(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """Run ``args`` with output to ``log``; stop the process by its PID afterwards."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=log.parent
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def _capture_server(workdir: Path, env: dict[str, str]) -> Iterator[tuple[int, Path]]:
    """Start ``mailkit serve`` on a free port; yield the port and its Maildir."""
    maildir = workdir / "maildir"
    log = workdir / "capture-server.log"
    args = [
        sys.executable, "-m", "mailkit.cli", "serve", "--port", "0",
        "--maildir", str(maildir), "--duration", str(SERVER_LIFETIME_S),
    ]
    with _subprocess(args, log, env) as process:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "listening on smtp://127.0.0.1:" in text:
                port = int(text.split("smtp://127.0.0.1:")[1].split(";")[0].split()[0])
                yield port, maildir
                return
            assert process.poll() is None, f"capture server exited:\n{_tail(log)}"
            time.sleep(0.1)
        pytest.fail(f"capture server did not start:\n{_tail(log)}")


def _jupyter_settings(settings_dir: Path) -> None:
    # No news or update checks (the machine has no network), and widget state
    # saved with the notebook, so that the test can scan it for the password.
    overrides = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {
            "saveState": True,
        },
    }
    for name, values in overrides.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@contextlib.contextmanager
def _jupyter_server(root_dir: Path, workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """Start JupyterLab (with Notebook 7 when installed) on 127.0.0.1 with a
    token; yield the base URL and query string as ``http://.../?token=...``."""
    port = _free_port()
    token = secrets.token_hex(16)
    settings_dir = workdir / "lab-settings"
    _jupyter_settings(settings_dir)
    env = {
        **env,
        "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab-workspaces"),
    }
    args = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.allow_root=True",
        f"--ServerApp.shutdown_no_activity_timeout={SERVER_LIFETIME_S}",
        f"--MappingKernelManager.cull_idle_timeout={SERVER_LIFETIME_S}",
        "--MappingKernelManager.cull_interval=30",
        "--LabApp.extension_manager=readonly",
        "--LabApp.expose_app_in_browser=True",
        "--JupyterNotebookApp.expose_app_in_browser=True",
    ]
    log = workdir / "jupyter.log"
    with _subprocess(args, log, env) as process:
        status_url = f"http://127.0.0.1:{port}/api/status?token={token}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, f"Jupyter exited:\n{_tail(log)}"
            try:
                with urllib.request.urlopen(status_url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        else:
            pytest.fail(f"Jupyter did not start within 60 s:\n{_tail(log)}")
        yield f"http://127.0.0.1:{port}/{{path}}?token={token}"


def _workspace(tmp_path: Path) -> Path:
    # A copy, because the browser saves the notebook it runs.
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    shutil.copytree(ROOT / "examples", root / "examples")
    for name in ("widgets.ipynb", "widgets-notebook7.ipynb"):
        shutil.copy(ROOT / "notebooks" / "widgets.ipynb", root / "notebooks" / name)
    return root


def _open_and_run(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=WAIT_MS)
    page.wait_for_function(KERNEL_IDLE, timeout=WAIT_MS)
    # Not awaited: the command's promise settles only when every cell has run.
    page.evaluate(
        "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
    )
    page.wait_for_selector(".mailkit-app", timeout=WAIT_MS)


def _open_tab(page, title: str) -> None:
    page.locator(".mailkit-app .lm-TabBar-tab", has_text=title).click()


def _progress_width(page) -> str:
    return page.locator(".mailkit-progress .progress-bar").evaluate(
        "element => element.style.width"
    )


def _stored_messages(maildir: Path, expected: int) -> list:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        files = list((maildir / "new").glob("*")) if (maildir / "new").exists() else []
        if len(files) >= expected:
            break
        time.sleep(0.2)
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(files)
    ]


def _saved_notebook(path: Path, page) -> str:
    before = path.stat().st_mtime_ns
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.stat().st_mtime_ns != before:
            text = path.read_text(encoding="utf-8")
            if "application/vnd.jupyter.widget-state+json" in text:
                return text
        time.sleep(0.2)
    pytest.fail(f"{path.name} was not saved with widget state within 30 s")


def test_forms_in_jupyterlab_and_notebook7(tmp_path):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    OUTPUT.mkdir(exist_ok=True)
    root = _workspace(tmp_path)
    people = pd.read_csv(ROOT / "examples" / "recipients.csv", dtype=str)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "MAILKIT_PROGRESS": "0",
    }
    env.pop("MAILKIT_SMTP_URL", None)
    env.pop("MAILKIT_SMTP_PASSWORD", None)

    with (
        _capture_server(tmp_path, env) as (smtp_port, maildir),
        _jupyter_server(root, tmp_path, env) as url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})

            # JupyterLab: fill the server form with the test's capture server.
            _open_and_run(page, url.format(path="lab/tree/notebooks/widgets.ipynb"))
            page.locator(".mailkit-host input").fill("127.0.0.1")
            page.locator(".mailkit-port input").fill(str(smtp_port))
            page.locator(".mailkit-port input").press("Tab")
            page.locator(".mailkit-security select").select_option(
                label="none (local test servers only)"
            )
            password = page.locator(".mailkit-password input")
            password.fill(SECRET)
            password.press("Tab")
            expect(password).to_have_value("", timeout=WAIT_MS)
            page.locator(".mailkit-test-connection").click()
            expect(page.locator(".mailkit-settings-status")).to_contain_text(
                f"Connected to 127.0.0.1:{smtp_port} without TLS", timeout=WAIT_MS
            )
            page.locator(".mailkit-app").screenshot(
                path=str(OUTPUT / "widgets-jupyterlab-server.png")
            )

            # The preview follows what is typed.
            _open_tab(page, "2. Message")
            first = people.iloc[0]
            page.locator(".mailkit-subject input").fill(
                "Reminder {{ invoice_id }} for {{ company }}"
            )
            expect(page.locator(".mailkit-composer-preview")).to_contain_text(
                f"Reminder {first.invoice_id} for {first.company}", timeout=WAIT_MS
            )
            expect(page.locator(".mailkit-problems")).to_contain_text(
                "No problems found in 100 row(s)", timeout=WAIT_MS
            )
            page.locator(".mailkit-app").screenshot(
                path=str(OUTPUT / "widgets-jupyterlab-message.png")
            )

            # Send, and wait for the progress bar to reach the total.
            _open_tab(page, "3. Send")
            page.locator(".mailkit-send-button").click()
            expect(page.locator(".mailkit-progress-text")).to_have_text(
                "100 / 100", timeout=WAIT_MS
            )
            expect(page.locator(".mailkit-send-status")).to_contain_text(
                "100 row(s): 100 sent", timeout=WAIT_MS
            )
            expect(page.locator(".mailkit-send-button")).to_be_enabled()
            assert _progress_width(page) == "100%"
            page.locator(".mailkit-app").screenshot(
                path=str(OUTPUT / "widgets-jupyterlab.png")
            )

            messages = _stored_messages(maildir, len(people))
            assert len(messages) == len(people)
            assert sorted(m["To"] for m in messages) == sorted(people["email"])
            by_recipient = {m["To"]: m for m in messages}
            for row in people.itertuples():
                subject = by_recipient[row.email]["Subject"]
                assert subject == f"Reminder {row.invoice_id} for {row.company}"

            saved = _saved_notebook(root / "notebooks" / "widgets.ipynb", page)
            assert SECRET not in saved
            assert "mailkit-password" in saved
            page.close()

            # Notebook 7: the same notebook, sent to its own capture server.
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            _open_and_run(page, url.format(path="notebooks/notebooks/widgets-notebook7.ipynb"))
            expect(page.locator(".mailkit-app .lm-TabBar-tab")).to_have_count(3)
            _open_tab(page, "3. Send")
            page.locator(".mailkit-send-button").click()
            expect(page.locator(".mailkit-progress-text")).to_have_text(
                "100 / 100", timeout=WAIT_MS
            )
            expect(page.locator(".mailkit-send-status")).to_contain_text(
                "100 row(s): 100 sent", timeout=WAIT_MS
            )
            page.locator(".mailkit-app").screenshot(
                path=str(OUTPUT / "widgets-notebook7.png")
            )
        finally:
            browser.close()

    # The JupyterLab batch went to the test's server only.
    assert len(_stored_messages(maildir, len(people))) == len(people)
