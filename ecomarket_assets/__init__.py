"""EcoMarket's code location.

OpenMP threads (LightGBM, scikit-learn) sleep instead of spinning when they wait. The default, spinning, makes a
2-thread LightGBM fit 3-4x slower than a 1-thread one as soon as another job shares the cores (measured on
Online Retail, `benchmarks/daily.py`); idle, the two policies run the same. Set before any OpenMP library loads;
an explicit OMP_WAIT_POLICY in the environment is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
