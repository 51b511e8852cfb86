"""Packaging metadata and repository files that a fresh checkout relies on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)


def test_license_is_spdx_expression():
    # A TOML table such as {text = "MIT"} makes setuptools 77 and later print a
    # deprecation warning on every install.
    assert _pyproject()["project"]["license"] == "MIT"


def test_build_requires_spdx_capable_setuptools():
    requires = [Requirement(text) for text in _pyproject()["build-system"]["requires"]]
    setuptools = [req for req in requires if req.name == "setuptools"]
    assert len(setuptools) == 1
    lower_bounds = [
        Version(spec.version)
        for spec in setuptools[0].specifier
        if spec.operator in (">=", "==", "~=")
    ]
    assert lower_bounds, "setuptools needs a lower bound"
    assert max(lower_bounds) >= Version("77")


def test_gitignore_ignores_capture_maildir():
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    # The README's examples store captured messages in a Maildir named captured/.
    checked = subprocess.run(
        [git, "check-ignore", "--no-index", "captured/new/1.example"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr or "captured/ is not ignored"
