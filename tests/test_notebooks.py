"""Committed notebooks are clean, and the widgets notebook never saves a password."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(
    path
    for path in ROOT.rglob("*.ipynb")
    if not {".venv", ".ipynb_checkpoints", "test-output", "build"} & set(path.parts)
)
SECRET = "example-secret-123"
SECRET_ENV = "MAILKIT_TEST_TYPED_PASSWORD"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


def test_notebooks_found():
    names = {path.name for path in NOTEBOOKS}
    assert {"quickstart.ipynb", "widgets.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)

    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"cell {index} of {path.name} has saved outputs"
        assert cell.execution_count is None, (
            f"cell {index} of {path.name} has an execution count"
        )
    assert "widgets" not in notebook.metadata, f"{path.name} has saved widget state"
    text = path.read_text(encoding="utf-8")
    assert WIDGET_STATE_MIME not in text
    assert "it/s" not in text
    assert "application/vnd.jupyter.widget-view+json" not in text


def _executed_widgets_notebook(tmp_path: Path, monkeypatch) -> Path:
    notebook = nbformat.read(ROOT / "notebooks" / "widgets.ipynb", as_version=4)
    notebook.cells += [
        nbformat.v4.new_code_cell(
            # The password comes from the environment, as typing it would, so
            # that the cell source does not contain it.
            "import os\n"
            "settings = form.settings\n"
            'settings.username.value = "robot@example.com"\n'
            f'settings.password.value = os.environ["{SECRET_ENV}"]\n'
            "settings.test_connection()\n"
            "settings.password.value, settings.has_password"
        ),
        nbformat.v4.new_code_cell(
            'settings.username.value = ""\n'
            "form.panel.start()\n"
            "form.panel.wait(60)\n"
            "len(server.messages), form.panel.progress.value"
        ),
    ]
    monkeypatch.setenv(SECRET_ENV, SECRET)
    # The kernel must import the mailkit of this tree, as the tests do.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()
    saved = tmp_path / "widgets-executed.ipynb"
    nbformat.write(notebook, saved)
    return saved


def test_widgets_notebook_saves_no_password(tmp_path, monkeypatch):
    saved = _executed_widgets_notebook(tmp_path, monkeypatch)
    text = saved.read_text(encoding="utf-8")
    notebook = json.loads(text)

    assert SECRET not in text
    # The check above means something only if the widget state was saved.
    state = notebook["metadata"]["widgets"][WIDGET_STATE_MIME]["state"]
    classes = [
        name
        for model in state.values()
        for name in model.get("state", {}).get("_dom_classes", [])
    ]
    assert "mailkit-password" in classes
    password_cell, send_cell = nbformat.reads(text, as_version=4).cells[-2:]
    assert password_cell.outputs[-1]["data"]["text/plain"] == "('', True)"
    assert send_cell.outputs[-1]["data"]["text/plain"] == "(100, 100)"
