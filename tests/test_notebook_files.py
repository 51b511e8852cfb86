"""Committed notebooks hold no outputs, and timing cells are excluded from nbval.

Saved outputs with timings or progress bars make nbval fail at random, and saved
widget state bloats the file, so notebooks are committed clean.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
BENCHMARK_NOTEBOOKS = ("speed_comparison", "throughput", "interactive_benchmark")
#: Lines whose output shows timings or rates, so their cells must skip comparison.
TIMING_LINES = re.compile(
    r"describe_machine\(\)|\.(table|details|targets|as_frame|plot)\(\)"
    r"|^where\.(stages|components|top_functions)$|status\.value$",
    re.MULTILINE,
)

def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_has_no_saved_output(path):
    for index, cell in enumerate(_cells(path)):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"cell {index} has saved output"
        assert cell.get("execution_count") is None, f"cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_has_no_widget_state(path):
    metadata = json.loads(path.read_text(encoding="utf-8"))["metadata"]
    assert "widgets" not in metadata


@pytest.mark.parametrize("name", BENCHMARK_NOTEBOOKS)
def test_timing_cells_skip_output_comparison(name):
    path = next(path for path in NOTEBOOKS if path.stem == name)
    for index, cell in enumerate(_cells(path)):
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or not TIMING_LINES.search(source):
            continue
        assert source.startswith("# NBVAL_IGNORE_OUTPUT"), f"cell {index} shows timings"
