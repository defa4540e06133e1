"""EcoMarket's code location.

OpenMP threads (LightGBM) keep the runtime's default wait, a short spin: on an idle machine a fit runs 2.7x
faster than with `OMP_WAIT_POLICY=PASSIVE` (`benchmarks/threads.py`: 2.5 s against 6.9 s). Beside another job
that keeps a core busy the spin costs 3.5x; the test suite, whose two workers share the cores, sets PASSIVE in
its conftest. An explicit OMP_WAIT_POLICY in the environment is always kept.
"""
