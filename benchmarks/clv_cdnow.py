"""BG/NBD + Gamma-Gamma holdout check on the full CDNOW cohort (23,570 customers).

    .venv/bin/python benchmarks/clv_cdnow.py [--data ../shared/datasets/cdnow/CDNOW_master.txt]

Calibrates on the first 39 weeks (1997-01-01..1997-09-30), predicts each customer's purchase
occasions (distinct purchase days) and revenue in the next 39 weeks (1997-10-01..1998-06-30),
and compares with what happened and with a naive "same rate as in calibration" baseline.
Prints tables; not a test.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets.profiles.clv import (
    BetaGeoModel,
    GammaGammaModel,
    read_cdnow_transactions,
    rfm_summary,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "datasets" / "cdnow" / "CDNOW_master.txt"
CALIBRATION_END = pd.Timestamp("1997-09-30", tz="UTC")
HOLDOUT_END = pd.Timestamp("1998-06-30", tz="UTC")
HORIZON_WEEKS = 39.0  # 1997-10-01..1998-06-30 is 273 days


def holdout_actuals(transactions: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Purchase occasions (distinct UTC days) and revenue per customer in the holdout window."""
    day = transactions["event_time"].dt.floor("D")
    window = transactions[(day > CALIBRATION_END) & (day <= HOLDOUT_END)]
    daily = window.groupby(["user_id", window["event_time"].dt.floor("D")])["revenue"].sum()
    per = (
        daily.groupby(level="user_id")
        .agg(["size", "sum"])
        .rename(columns={"size": "purchases", "sum": "revenue"})
    )
    return per.reindex(index, fill_value=0)


def row(name: str, predicted: np.ndarray, actual: np.ndarray) -> str:
    mae = np.mean(np.abs(predicted - actual))
    rmse = np.sqrt(np.mean((predicted - actual) ** 2))
    total_p, total_a = predicted.sum(), actual.sum()
    return f"{name:<22}{mae:>9.3f}{rmse:>9.3f}{total_p:>14,.0f}{total_a:>12,.0f}{total_p / total_a - 1:>+9.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    started = time.perf_counter()

    tx = read_cdnow_transactions(args.data)
    rfm = rfm_summary(tx, calibration_end=CALIBRATION_END, time_unit="W")
    actual = holdout_actuals(tx, rfm.index)
    x, t_x, T, m = rfm["frequency"], rfm["recency"], rfm["T"], rfm["monetary_value"]
    prepared = time.perf_counter()

    bg = BetaGeoModel().fit(x, t_x, T)
    fit_bg = time.perf_counter()
    positive = (x > 0) & (m > 0)  # a few repeat buyers only had $0.00 orders
    gg = GammaGammaModel().fit(x[positive], m[positive])
    fit_gg = time.perf_counter()
    bg_purchases = bg.expected_purchases(HORIZON_WEEKS, x, t_x, T).to_numpy()
    spend = gg.expected_average_value(x, m).to_numpy()
    predicted = time.perf_counter()
    naive_purchases = (x / T * HORIZON_WEEKS).to_numpy()
    repeaters = (x > 0).to_numpy()
    naive_spend = np.where(repeaters, m, m[repeaters].mean())  # own repeat mean, else cohort mean

    y = actual["purchases"].to_numpy(dtype=float)
    revenue = actual["revenue"].to_numpy()
    print(
        f"CDNOW master: {len(tx):,} rows, {len(rfm):,} customers, {repeaters.sum():,} repeat buyers "
        f"in calibration ({repeaters.sum() - positive.sum()} with $0 mean repeat spend, left out of the GG fit)"
    )
    print("BG/NBD params: " + ", ".join(f"{k}={v:.4f}" for k, v in bg.params_.items()))
    print("Gamma-Gamma params: " + ", ".join(f"{k}={v:.4f}" for k, v in gg.params_.items()))
    print(
        f"corr(frequency, monetary) among repeaters: {np.corrcoef(x[repeaters], m[repeaters])[0, 1]:+.3f}"
        " (Gamma-Gamma assumes ~0)"
    )

    print(f"\nHoldout purchase occasions per customer, next {HORIZON_WEEKS:.0f} weeks")
    print(f"{'model':<22}{'MAE':>9}{'RMSE':>9}{'predicted':>14}{'actual':>12}{'bias':>9}")
    print(row("BG/NBD", bg_purchases, y))
    print(row("naive (calib. rate)", naive_purchases, y))

    print("\nMean holdout purchases by calibration frequency")
    bucket = np.minimum(x.to_numpy(), 7)
    table = pd.DataFrame(
        {"bucket": bucket, "actual": y, "BG/NBD": bg_purchases, "naive": naive_purchases}
    )
    by = table.groupby("bucket").agg(
        customers=("actual", "size"),
        actual=("actual", "mean"),
        bgnbd=("BG/NBD", "mean"),
        naive=("naive", "mean"),
    )
    by.index = [str(int(b)) if b < 7 else "7+" for b in by.index]
    print(by.rename(columns={"bgnbd": "BG/NBD"}).to_string(float_format=lambda v: f"{v:.3f}"))

    buyers = y > 0
    actual_mean = revenue[buyers] / y[buyers]
    print("\nMean spend per occasion, holdout buyers (actual = their holdout revenue / occasions)")
    for label, mask in [
        ("calibration repeaters", repeaters[buyers]),
        ("all holdout buyers", np.ones(buyers.sum(), bool)),
    ]:
        print(
            f"  {label:<22} n={mask.sum():>5,}  Gamma-Gamma {spend[buyers][mask].mean():7.2f}"
            f"   actual {actual_mean[mask].mean():7.2f}"
        )
    print(f"  Gamma-Gamma population mean p v / (q - 1): {gg.population_mean_value():.2f}")

    print("\nHoldout revenue per customer ($)")
    print(f"{'model':<22}{'MAE':>9}{'RMSE':>9}{'predicted':>14}{'actual':>12}{'bias':>9}")
    print(row("BG/NBD x Gamma-Gamma", bg_purchases * spend, revenue))
    print(row("naive x own mean", naive_purchases * naive_spend, revenue))

    print(
        f"\nTimings: load + RFM {prepared - started:.2f}s, BG/NBD fit {fit_bg - prepared:.2f}s, "
        f"Gamma-Gamma fit {fit_gg - fit_bg:.2f}s, predictions {predicted - fit_gg:.3f}s, "
        f"total {time.perf_counter() - started:.2f}s"
    )


if __name__ == "__main__":
    main()
