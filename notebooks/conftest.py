"""Settings for running the notebooks as tests with nbval.

The benchmark notebooks run at small size under test: seconds instead of
minutes. The kernels that nbval starts inherit this process's environment.
"""

import os

os.environ.setdefault("MAILKIT_BENCH_SIZE", "small")
os.environ.setdefault("MAILKIT_PROGRESS", "0")
