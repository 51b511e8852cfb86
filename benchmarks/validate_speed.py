"""Time mailkit.validate on 100,000 rows and print the figures.

Run from the repository root:

    python -m benchmarks.validate_speed [--rows 100000] [--repeat 3]

The frame has the columns a mail merge usually has (address, names, amounts,
dates, codes) plus a few cells that take the slow, per-cell paths: addresses
with display names, an IDN domain, blank cells and a value with a line break.
The ratio compares validate with one pass of ``df.itertuples()``, a loop that
reads every row and checks nothing, measured in the same process.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import mailkit

SENDER = "Accounts team <accounts@example.com>"
TEMPLATES = {
    "subject": "Invoice {{ invoice_id }} for {{ company }}",
    "body": "Hello {{ first_name }},\n\nYou owe {{ amount | number(2) }} EUR, due "
    "{{ due_date | date('%d %B %Y') }}.\n",
    "html": "<p>Hello {{ first_name }}, invoice {{ invoice_id }}</p>",
    "sender": SENDER,
}


def make_frame(rows: int) -> pd.DataFrame:
    """Build ``rows`` rows; a few hundred of them have unusual cells."""
    numbers = np.arange(rows)
    df = pd.DataFrame(
        {
            "email": [f"user{i}@example.com" for i in numbers],
            "first_name": [f"Name{i}" for i in numbers],
            "company": [f"Company {i % 977}" for i in numbers],
            "invoice_id": [f"INV-{i:07d}" for i in numbers],
            "amount": (numbers % 10_000) / 100,
            "due_date": ["2027-07-30"] * rows,
        }
    )
    unusual = numbers[:: max(rows // 300, 1)]
    df.loc[unusual[0::3], "email"] = [
        f'"Doe, J{i}" <j{i}@example.org>' for i in unusual[0::3]
    ]
    df.loc[unusual[1::3], "email"] = [f"user{i}@bücher.example" for i in unusual[1::3]]
    df.loc[unusual[2::3], "first_name"] = None
    df.loc[unusual[-1], "company"] = "Line\nbreak"
    return df


def _best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to check")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best counts")
    args = parser.parse_args()

    df = make_frame(args.rows)
    problems = mailkit.validate(df, **TEMPLATES)
    validate_s = _best_of(args.repeat, lambda: mailkit.validate(df, **TEMPLATES))
    loop_s = _best_of(args.repeat, lambda: sum(1 for _ in df.itertuples()))

    print(f"rows: {args.rows}")
    print(f"problems found: {len(problems)}")
    print(f"validate: {validate_s:.2f} s ({args.rows / validate_s:,.0f} rows/s)")
    print(f"itertuples pass: {loop_s:.3f} s")
    print(f"ratio validate / itertuples: {validate_s / loop_s:.1f}")


if __name__ == "__main__":
    main()
