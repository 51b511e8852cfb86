"""Stopping the helper processes that benchmarks start (sinks, latency servers)."""

from __future__ import annotations

import subprocess

__all__ = ["stop_process"]


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """End ``process`` with SIGTERM, and with SIGKILL when it is still running
    ``timeout`` seconds later."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
