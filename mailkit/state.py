"""Module-level state that outlives one call, such as the results of the last run."""

from __future__ import annotations

import pandas as pd

#: The results DataFrame of the last send_bulk call in this process, also when
#: it ended with an exception or an interrupt.
last_results: pd.DataFrame | None = None
