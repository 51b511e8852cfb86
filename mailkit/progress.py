"""Progress bars for a batch, made and updated in the calling thread only."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import warnings
from typing import Any, Union

import tqdm
import tqdm.std

__all__ = [
    "ProgressOption",
    "check_progress_option",
    "open_bar",
    "progress_disabled_by_env",
]

logger = logging.getLogger(__name__)

#: Setting this environment variable to 0 turns every progress bar off, as
#: notebook tests need.
PROGRESS_ENV = "MAILKIT_PROGRESS"

ProgressOption = Union[bool, str, type, None]


def progress_disabled_by_env() -> bool:
    return os.environ.get(PROGRESS_ENV, "").strip().lower() in ("0", "false", "no", "off")


def _in_notebook_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _widgets_available() -> bool:
    if "ipywidgets" in sys.modules:
        return sys.modules["ipywidgets"] is not None
    return importlib.util.find_spec("ipywidgets") is not None


def check_progress_option(progress: ProgressOption) -> None:
    """Raise ValueError unless ``progress`` is a value that send_bulk accepts."""
    if progress in (True, False, None, "auto", "text") or isinstance(progress, type):
        return
    raise ValueError(
        f"Invalid progress={progress!r}: use True, 'auto', 'text', False or a tqdm class."
    )


def _bar_class(progress: ProgressOption) -> type | None:
    check_progress_option(progress)
    if progress is False or progress is None or progress_disabled_by_env():
        return None
    if isinstance(progress, type):
        return progress
    if progress == "text":
        return tqdm.std.tqdm
    if progress in (True, "auto"):
        if not _in_notebook_kernel():
            return tqdm.std.tqdm
        if not _widgets_available():
            warnings.warn(
                "ipywidgets is not installed in this kernel, so the progress bar is "
                "shown as text; `pip install ipywidgets` gives a widget bar.",
                stacklevel=4,
            )
            return tqdm.std.tqdm
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm
    return None


def open_bar(total: int, progress: ProgressOption, description: str) -> Any | None:
    """Return a started bar for ``total`` rows, or None when progress is off.

    A widget front end that fails to start falls back to a text bar.
    """
    bar_class = _bar_class(progress)
    if bar_class is None:
        return None
    try:
        return bar_class(total=total, desc=description, unit="msg")
    except ImportError as exc:
        warnings.warn(
            f"The notebook progress bar could not start ({exc}); showing a text bar.",
            stacklevel=3,
        )
        return tqdm.std.tqdm(total=total, desc=description, unit="msg")
