"""A description of the machine and load that a benchmark ran under."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata

__all__ = ["describe_machine"]

_PACKAGES = ("mailkit", "aiosmtpd", "aiosmtplib", "pandas")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine() -> str:
    """Return one line with time, cores, load average, Python and package versions."""
    load = "unknown"
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    versions = ", ".join(f"{name} {_version(name)}" for name in _PACKAGES)
    return (
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"load average {load} (1, 5, 15 min), {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}, {versions}"
    )
