"""The delivery benchmark runs end to end; its timings are not checked here."""

from __future__ import annotations

import pytest

from benchmarks.delivery import run_delivery_benchmark, summarize


@pytest.mark.parametrize("in_process", [True, False], ids=["thread", "process"])
def test_delivery_benchmark_small_run(in_process):
    report = run_delivery_benchmark(
        messages=20, scale=0.005, repeats=1, in_process=in_process
    )

    assert set(report.times) == {
        "thread pool, connection per message",
        "mailkit pooled, pipelined",
        "mailkit pooled, first login",
        "mailkit pooled, not pipelined",
        "mailkit pool of 15",
        "mailkit adaptive, max_connections=30",
    }
    assert all(len(runs) == 1 for runs in report.times.values())
    assert report.session_cap == 15
    assert len(report.checks()) == 5
    text = summarize(report)
    assert "Targets:" in text
    assert "pipelining gain" in text
