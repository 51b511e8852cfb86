"""Benchmark runners, reports, targets and the command line, at tiny sizes.

These check that each benchmark runs and reports what it measured; they assert
on no speed, because timings on a shared machine are noise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.interactive import INTERACTIVE_DESIGNS, InteractiveBenchmark
from benchmarks.memory import measure_peak_memory
from benchmarks.profiling import profile_end_to_end, summarize as summarize_profile
from benchmarks.settings import SIZE_ENV, bench_size
from benchmarks.sinks import postfix_tools
from benchmarks.speed import SpeedSettings, run_speed_comparison, summarize as summarize_speed
from benchmarks.targets import at_least, at_most
from benchmarks.throughput import ThroughputSettings, run_throughput, sink_list

ROOT = Path(__file__).resolve().parent.parent


def test_target_met_and_missed_verdicts():
    assert at_least("speedup", 2.5, 2.3).verdict == "met"
    assert at_least("speedup", 1.15, 2.3).verdict == "missed: 50% below the target"
    assert at_most("bound", 1.05, 1.10).verdict == "met"
    assert at_most("bound", 1.65, 1.10).verdict == "missed: 50% above the target"
    record = at_most("bound", 1.65, 1.10).as_record()
    assert record["required"] == "<= 1.10"
    assert record["measured"] == 1.65


def test_bench_size_reads_the_environment(monkeypatch):
    monkeypatch.delenv(SIZE_ENV, raising=False)
    assert bench_size() == "full"
    monkeypatch.setenv(SIZE_ENV, "Small")
    assert bench_size() == "small"
    monkeypatch.setenv(SIZE_ENV, "huge")
    with pytest.raises(ValueError, match="MAILKIT_BENCH_SIZE='huge'"):
        bench_size()


def test_speed_comparison_reports_every_design():
    settings = replace(SpeedSettings.small(), sizes=(2, 4), scale=0.005)
    seen = []
    report = run_speed_comparison(settings, on_run=seen.append)
    assert len(seen) == 2 * 7
    table = report.table()
    assert list(table.index) == [2, 4]
    assert list(table.columns) == [
        "Sequential (s)",
        "Fast (s)",
        "Instant (thread pool) (s)",
        "mailkit instant (s)",
        "Fast speedup",
        "Instant (thread pool) speedup",
        "mailkit instant speedup",
    ]
    assert table["Fast speedup"].str.endswith("x").all()
    details = report.details()
    assert "lower bound" in details.columns
    assert details.loc[4, "lower bound"] == pytest.approx(
        report.setup_s + report.message_s, abs=0.001
    )
    targets = report.targets()
    assert len(targets) == 4
    assert targets["target"].str.contains("4 messages").all()
    assert targets["target"].str.startswith("context: mailkit transport").sum() == 2
    text = summarize_speed(report)
    assert "Targets:" in text
    assert "Sequential (s)" in text


def test_speed_report_plot_draws_every_design():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = replace(SpeedSettings.small(), sizes=(2,), scale=0.0, extra=False)
    report = run_speed_comparison(settings)
    ax = report.plot()
    labels = [line.get_label() for line in ax.get_lines()]
    plt.close(ax.figure)
    assert labels == [
        "sequential",
        "fast",
        "thread pool",
        "mailkit instant",
        "lower bound, 10 connections",
    ]


def test_throughput_reports_ratios_to_smtp_source():
    settings = ThroughputSettings(messages=30, worker_counts=(2,), repeats=1)
    report = run_throughput(settings)
    table = report.table()
    sinks = set(table.index.get_level_values("sink"))
    if postfix_tools() is None:
        assert sinks == {"aiosmtpd"}
        assert "smtp-sink" in report.skipped
        return
    assert sinks == {"smtp-sink", "aiosmtpd"}
    designs = set(table.loc["smtp-sink"].index)
    assert {
        "smtp-source -d -s 10",
        "smtp-source -s 10",
        "mailkit transport",
        "mailkit transport x2",
        "smtplib pool",
        "aiosmtplib",
        "smtplib, one connection",
        "mailkit fast",
        "mailkit instant x2",
    } <= designs
    assert table.loc[("smtp-sink", "smtp-source -d -s 10"), "vs smtp-source -d"] == 1.0
    targets = report.targets()
    assert len(targets) == 3
    assert targets["verdict"].str.match(r"^(met|missed: \d+% below the target)$").all()


def test_sink_list_rejects_unknown_names():
    assert sink_list("smtp-sink, aiosmtpd") == ("smtp-sink", "aiosmtpd")
    with pytest.raises(ValueError, match="Unknown sink"):
        sink_list("postfix")


def test_memory_child_reports_peak_above_frame():
    result = measure_peak_memory(200, workers=2, timeout=120)
    assert result.rows == 200
    assert result.sent == 200
    assert result.frame_bytes > 0
    assert result.rss_with_frame >= result.rss_before_frame
    assert result.peak_rss >= result.rss_with_frame
    assert result.growth == result.peak_rss - result.rss_with_frame
    assert result.traced_peak is None
    frame = result.as_frame()
    assert "peak above the DataFrame (MB)" in frame.index
    assert len(result.targets()) == 1


def test_memory_child_traces_allocations():
    result = measure_peak_memory(50, workers=2, sink="aiosmtpd", trace=True, timeout=120)
    assert result.sink == "aiosmtpd"
    assert result.traced_peak is not None
    assert result.traced_peak > 0


def test_memory_child_failure_raises():
    with pytest.raises(RuntimeError, match="memory benchmark child failed"):
        measure_peak_memory(-5, workers=1, sink="aiosmtpd", timeout=60)


def test_memory_child_timeout_raises():
    with pytest.raises(RuntimeError, match="timed out after 0.5 s sending 20,000 rows"):
        measure_peak_memory(20_000, workers=2, sink="aiosmtpd", timeout=0.5)


def test_profile_splits_time_by_component():
    report = profile_end_to_end(40, workers=2)
    assert list(report.stages.index) == [
        "compose every row (one thread)",
        "preflight (validate)",
        "send prebuilt messages (mailkit transport, 2 connections)",
        "send_bulk end to end (2 workers)",
    ]
    components = set(report.components.index)
    assert "building and serializing MIME (email package)" in components
    assert "SMTP and sockets (smtplib, ssl, socket)" in components
    assert report.cpu_s > 0
    assert report.components["own CPU s"].sum() == pytest.approx(report.cpu_s, rel=0.01)
    assert "Where the time goes" in summarize_profile(report)


def _run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, PYTHONPATH=str(ROOT), MAILKIT_PROGRESS="0")
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=240,
    )


def test_command_line_prints_speed_tables():
    completed = _run_cli(
        "--size", "small", "speed", "--sizes", "2,3", "--repeats", "1", "--scale", "0.0"
    )
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    assert "cores" in output
    assert "Python 3." in output
    assert "Speed comparison: gmail profile, delays x0" in output
    assert "mailkit instant speedup" in output
    assert "Targets:" in output


def test_command_line_rejects_bad_list():
    completed = _run_cli("speed", "--sizes", "10,x")
    assert completed.returncode == 2
    assert "invalid list '10,x'" in completed.stderr


def test_command_line_rejects_bad_size_variable():
    environment_size = os.environ.get(SIZE_ENV)
    os.environ[SIZE_ENV] = "huge"
    try:
        completed = _run_cli("speed")
    finally:
        if environment_size is None:
            del os.environ[SIZE_ENV]
        else:
            os.environ[SIZE_ENV] = environment_size
    assert completed.returncode == 2
    assert "Invalid MAILKIT_BENCH_SIZE='huge'" in completed.stderr


def test_interactive_run_records_the_curve():
    bench = InteractiveBenchmark(messages=8, workers=3, profile="loopback", scale=0.001)
    curve = bench.run(wait=True, timeout=60)
    assert curve is not None
    assert curve.error is None
    assert curve.count == 8
    assert curve.times == sorted(curve.times)
    assert curve.elapsed_s is not None
    assert bench.status.value.startswith("8 messages in ")
    assert not bench.run_button.disabled
    assert bytes(bench.plot.value).startswith(b"\x89PNG")


def test_interactive_every_design_runs():
    bench = InteractiveBenchmark(messages=3, workers=2, profile="loopback", scale=0.001)
    for design in INTERACTIVE_DESIGNS:
        bench.design.value = design
        curve = bench.run(wait=True, timeout=60)
        assert curve.error is None, design
        assert curve.count == 3, design
    bench.clear()
    assert bench.curves == []


def test_interactive_failure_shows_in_status(monkeypatch):
    def broken(endpoint, n, workers):
        raise RuntimeError("the design broke")

    monkeypatch.setitem(INTERACTIVE_DESIGNS, "broken", broken)
    bench = InteractiveBenchmark(messages=2, profile="loopback", scale=0.001)
    bench.design.options = [*bench.design.options, "broken"]
    bench.design.value = "broken"
    curve = bench.run(wait=True, timeout=60)
    assert curve.error == "RuntimeError: the design broke"
    assert bench.status.value == "Failed: RuntimeError: the design broke"
    assert not bench.run_button.disabled


def test_interactive_refuses_a_second_run_while_running():
    bench = InteractiveBenchmark(messages=5, workers=1, profile="gmail", scale=0.05)
    bench.design.value = "sequential, new connection per message"
    first = bench.run()
    second = bench.run()
    assert first is not None
    assert second is None
    assert bench.status.value == "A run is still in progress."
    bench._thread.join(60)
    assert first.count == 5


def test_interactive_session_cap_shows_421():
    bench = InteractiveBenchmark(messages=20, workers=20, profile="gmail", scale=0.2)
    bench.design.value = "thread pool, new connection per message"
    assert bench.session_cap.value
    curve = bench.run(wait=True, timeout=60)
    assert curve.error is not None
    assert "421" in curve.error
    assert bench.status.value.startswith("Failed: SMTPConnectError")
