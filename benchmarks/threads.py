"""How LightGBM's OpenMP threads should wait: the same fit under each policy, idle and beside a busy core.

Every LightGBM fit in EcoMarket (demand model, ranker, churn, uplift) runs many short parallel regions per
round; how an OpenMP thread waits between them decides a fit's speed. Each variant runs in its own process
(the policy is read when the OpenMP runtime loads), first on an idle machine, then beside a process that keeps
one core busy (another job sharing the cores, or a second pytest worker).

    .venv/bin/python benchmarks/threads.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

VARIANTS = {  # name -> (environment, LightGBM threads)
    "default wait, 2 threads": ({}, 2),
    "OMP_WAIT_POLICY=PASSIVE, 2 threads": ({"OMP_WAIT_POLICY": "PASSIVE"}, 2),
    "default wait, 1 thread": ({}, 1),
}

FIT = """
import sys, time
import lightgbm as lgb
import numpy as np
rng = np.random.default_rng(7)
x = rng.normal(size=(60_000, 40))
y = rng.poisson(np.exp(0.3 * x[:, 0] - 0.2 * x[:, 1]))
train = lgb.Dataset(x[:50_000], label=y[:50_000], params={"verbose": -1}).construct()
valid = lgb.Dataset(x[50_000:], label=y[50_000:], reference=train)
params = {"objective": "tweedie", "metric": "l1", "num_leaves": 63, "learning_rate": 0.05, "verbose": -1,
          "num_threads": int(sys.argv[1]), "force_col_wise": True, "deterministic": True, "seed": 7}
start = time.perf_counter()
lgb.train(params, train, num_boost_round=int(sys.argv[2]), valid_sets=[valid])
print(time.perf_counter() - start)
"""


def fit_seconds(env: dict, threads: int, rounds: int) -> float:
    """One fit in a fresh process (the demo shop's demand training set's shape: 50,000 rows x 40 features)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", FIT, str(threads), str(rounds)], env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    print(f"LightGBM Tweedie fit, {args.rounds} rounds, validation metric every round; seconds (best of 2)")
    print(f"{'variant':<38} {'idle':>8} {'one core busy':>14}")
    idle = {name: min(fit_seconds(env, t, args.rounds) for _ in range(2)) for name, (env, t) in VARIANTS.items()}
    busy_loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = {name: min(fit_seconds(env, t, args.rounds) for _ in range(2)) for name, (env, t) in VARIANTS.items()}
    finally:
        busy_loop.kill()
    for name in VARIANTS:
        print(f"{name:<38} {idle[name]:8.2f} {busy[name]:14.2f}")


if __name__ == "__main__":
    main()
