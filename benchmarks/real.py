"""`make bench-real`: each model against its strongest simple rivals on a real shop, at rolling origins.

    .venv/bin/python benchmarks/real.py                          # Online Retail: ingest, then every part
    .venv/bin/python benchmarks/real.py --parts churn --data-dir DIR --skip-ingest   # reuse an ingested shop
    options: --origins N (default 3)  --timeout S (demand search budget, default 120)

Online Retail's ten months are ingested once with the real assets (a fresh process per stage). Every part then
scores at `--origins` origins 28 days apart; the newest origin's window ends on the file's last day. A model
sees only the days up to its origin, and every choice it makes (Optuna, interval calibration) is made on
windows that end before the first origin: nothing is tuned on a scored window.

- demand: the tuned LightGBM (refit at each origin) against seasonal naive, the same weekday's mean over 8
  weeks, a 28-day moving average and AutoETS, on the 28 days after each origin. Day and week WAPE, bias,
  P10-P90 coverage per day and per week (the model's own week bounds, calibrated on the tuning windows' week
  sums; coverage_week_summed_days: its summed daily bounds).
- churn: BG/NBD + Gamma-Gamma, the supervised LightGBM (on the shop's past cutoffs), their blend, and "served":
  what user_profiles serves (the model per column chosen on the 90 days before the origin, totals calibrated
  there), each fitted on the days before the origin and scored on the 90 days after it, against recency,
  1 / purchase days (churn) and "the same daily rate as the customer's history" (purchases, revenue). Churn
  AUC, Spearman, mean absolute error, predicted total / real total.
- cdnow: the same on CDNOW's 23,570 customers (purchases only), the classic CLV data set.
- recommender: the shop ingested up to each window's end and the recommender assets run on it: the ranker
  (raw, and served after filters and MMR) against most popular, item-kNN, EASE, the customer's own past
  products then popular, and TIFU-KNN, on every buyer of the window. NDCG@10 and Recall@20.
- sentiment: each UCI file of `sentiment_en` (Amazon, Yelp, IMDb) as a shop (file order: first 80 % train, last
  20 % test; no dates): TF-IDF + LR, embeddings + LR and the combined own-ratings model on the shop's ratings;
  without ratings the general model trained on the other two files, zero-shot, and `choose_model`'s pick.
  Balanced accuracy per shop and the mean over shops. Needs no ingested shop.

Prints one table per part (per origin and the mean over origins) and the wall time of each stage. Not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from stages import ONLINE_RETAIL, run_stage, use_source

WINDOW = 28
CDNOW = ONLINE_RETAIL.parents[1] / "cdnow" / "CDNOW_master.txt"
DEMAND_RIVALS = ("seasonal_naive", "weekday_mean", "moving_average", "auto_ets")


def ingest() -> list[dict]:
    return [run_stage("ingest", ["catalog", "customers", "reviews"]),
            run_stage("ingest", ["raw_events", "user_daily_activity"], partitioned=True),
            run_stage("ingest", ["product_embeddings", "demand_training_set"])]


# --------------------------------------------------------------------------- demand


def demand(data_dir: Path, origins: int, timeout: float, tuning_products: int) -> pd.DataFrame:
    """Per origin and method: day and week WAPE, bias and coverage (the model refit at each origin)."""
    from ecomarket_assets.forecasting import backtest as bt
    from ecomarket_assets.forecasting import training as tr
    from ecomarket_assets.forecasting.features import PanelSums
    from ecomarket_assets.forecasting.store import ForecastStore
    from ecomarket_assets.storage import DataLayout

    store = ForecastStore(DataLayout(data_dir))
    panel, basis = store.read_panel(), store.read_basis()
    train = store.read_training_set(panel, basis)
    sums = PanelSums(panel)
    plan = tr.plan_folds(len(panel.days), backtest_folds=origins, tuning_folds=2)
    print(f"demand: {len(panel.product_ids):,} products x {len(panel.days)} days; tuning windows end "
          f"{', '.join(str(panel.days[o + WINDOW].date()) for o in plan.tuning_origins)}; origins "
          f"{', '.join(str(panel.days[o].date()) for o in plan.backtest_origins)}", flush=True)
    start = time.perf_counter()
    folds = [tr.fold_data(panel, o, basis, sums) for o in plan.tuning_origins]
    sample, sample_folds = tr.tuning_sample(train, folds, tuning_products)
    budget = tr.search_budget(timeout, len(sample.target))
    tuning = tr.tune(sample, sample_folds, n_trials=15, timeout=budget)
    tune_seconds = time.perf_counter() - start
    print(f"  search: {len(tuning.trials)} trials in {tune_seconds:.0f} s, tuning-window WAPE {tuning.best_wape:.4f}, "
          f"{tuning.rounds} rounds", flush=True)
    start = time.perf_counter()
    result = bt.run_backtest(panel, train, plan, tuning, basis, None, sums)
    print(f"  backtest: {time.perf_counter() - start:.0f} s ({result.train_seconds:.0f} s refitting)", flush=True)
    columns = ["wape_day", "wape_week", "bias_day", "bias_week", "coverage_day", "coverage_week",
               "coverage_week_summed_days"]
    return result.per_fold[["method", "origin", *[c for c in columns if c in result.per_fold]]]


def demand_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over origins per method, and the model's WAPE relative to its best rival (negative = better)."""
    mean = table.groupby("method", sort=False).mean(numeric_only=True)
    best = {level: mean.loc[list(DEMAND_RIVALS), f"wape_{level}"].idxmin() for level in ("day", "week")}
    rows = []
    for level in ("day", "week"):
        rival = best[level]
        per_origin = table.pivot(index="origin", columns="method", values=f"wape_{level}")
        for method in ("lightgbm", "lightgbm_expected_units"):
            rows.append({"level": level, "model": method, "best_rival": rival,
                         "model_wape": mean.loc[method, f"wape_{level}"], "rival_wape": mean.loc[rival, f"wape_{level}"],
                         "vs_rival": mean.loc[method, f"wape_{level}"] / mean.loc[rival, f"wape_{level}"] - 1,
                         "origins_won": int((per_origin[method] < per_origin[rival]).sum())})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- churn and value


def shop_activity(data_dir: Path):
    from ecomarket_assets.profiles.activity import read_days
    from ecomarket_assets.storage import DataLayout

    return read_days(DataLayout(data_dir))


def cdnow_activity(path: Path):
    """CDNOW's purchases as the per-user daily table the profile models read (no views or products)."""
    from ecomarket_assets.profiles.activity import DailyActivity
    from ecomarket_assets.profiles.clv import read_cdnow_transactions

    tx = read_cdnow_transactions(path)
    users = (tx.assign(date=tx["event_time"].dt.strftime("%Y-%m-%d"), user_id=tx["user_id"].astype(str))
             .groupby(["date", "user_id"], as_index=False).agg(orders=("revenue", "size"), revenue=("revenue", "sum")))
    users = users.assign(events=users["orders"], sessions=1)  # CDNOW records purchases only
    empty = pd.DataFrame({"date": pd.Series(dtype=str), "user_id": pd.Series(dtype=str)})
    return DailyActivity(empty.assign(product_id=pd.Series(dtype=str)), users, empty.assign(hour=pd.Series(dtype=int)))


def churn(activity, origins: int) -> pd.DataFrame:
    """Per origin and method: churn AUC, purchases Spearman / MAE / total ratio, revenue MAE / total ratio."""
    from ecomarket_assets.profiles import build, predictive, supervised
    from ecomarket_assets.profiles.features import until

    last = dt.date.fromisoformat(max(activity.users["date"]))
    horizon = predictive.HORIZON_DAYS
    users = pd.Index(sorted(activity.users["user_id"].unique()))
    rows, choices = [], []
    for k in range(origins - 1, -1, -1):
        window_end = last - dt.timedelta(days=WINDOW * k)
        start = time.perf_counter()
        result = predictive.backtest(activity, users, window_end, horizon)
        scored = result.scored.set_index("user_id")
        cutoff = window_end - dt.timedelta(days=horizon)
        rivals = churn_rivals(activity.users, cutoff, horizon).reindex(scored.index)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        known = activity.users[activity.users["date"] <= cutoff.isoformat()]  # nothing after the origin
        learned = supervised.fit(known, cutoff, horizon)
        boosted = learned.predict(known, cutoff).reindex(scored.index) if learned else None
        boosted_seconds = time.perf_counter() - start
        start = time.perf_counter()  # what user_profiles serves: the model per column chosen on the 90 days before
        served = build.predict(until(activity, cutoff), scored.index, cutoff, horizon)
        served_table = served.table.set_index("user_id").reindex(scored.index)
        served_seconds = time.perf_counter() - start
        choices.append({"origin": cutoff, "served": served.selection.describe(), "note": served.selection.note,
                        **{f"scale_{k}": round(v, 3) for k, v in served.selection.scale.items()}})
        methods = {
            "bg_nbd": (scored["churn_probability"], scored["predicted_purchases"], scored["predicted_clv"]),
            "recency": (rivals["days_since_last_purchase"], None, None),
            "frequency": (1.0 / rivals["purchase_days"], None, None),
            "same_rate": (-rivals["same_rate_purchases"], rivals["same_rate_purchases"], rivals["same_rate_revenue"]),
            "history_rate": (-rivals["history_rate_purchases"], rivals["history_rate_purchases"],
                             rivals["history_rate_revenue"]),
        }
        if boosted is not None:
            methods["lightgbm"] = (boosted["churn_probability"], boosted["predicted_purchases"],
                                   boosted["predicted_clv"])
            methods["blend"] = tuple((scored[c] + boosted[c]) / 2 for c in ("churn_probability", "predicted_purchases",
                                                                               "predicted_clv"))
        methods["served"] = (served_table["churn_probability"], served_table["predicted_purchases"],
                             served_table["predicted_clv"])
        spent = {"bg_nbd": seconds, "lightgbm": boosted_seconds, "blend": seconds + boosted_seconds,
                 "served": served_seconds}
        for name, (churn_score, purchases, revenue) in methods.items():
            rows.append({"origin": cutoff, "method": name, "users": len(scored),
                         **value_scores(scored, churn_score, purchases, revenue),
                         "seconds": round(spent[name], 1) if name in spent else np.nan})
        print(f"  churn origin {cutoff} (window to {window_end}): {len(scored):,} past buyers, "
              f"{scored['no_purchase'].mean():.1%} without a purchase in {horizon} days, {seconds:.1f} s", flush=True)
    _show("which model user_profiles served per column, and its total calibration", pd.DataFrame(choices))
    return pd.DataFrame(rows)


def churn_rivals(users: pd.DataFrame, cutoff: dt.date, horizon: int) -> pd.DataFrame:
    """Per past buyer at `cutoff`: days since the last purchase, purchase days, and two daily rates: since the
    customer's first purchase, and over the shop's whole history (steadier for a customer who bought once lately)."""
    past = users[(users["date"] <= cutoff.isoformat()) & (users["orders"] > 0)]
    dates = pd.to_datetime(past["date"])
    grouped = past.assign(date=dates).groupby("user_id")
    first, latest = grouped["date"].min(), grouped["date"].max()
    span = (pd.Timestamp(cutoff) - first).dt.days + 1
    history = (pd.Timestamp(cutoff) - pd.Timestamp(users["date"].min())).days + 1
    days, revenue = grouped["date"].nunique(), grouped["revenue"].sum()
    return pd.DataFrame({"days_since_last_purchase": (pd.Timestamp(cutoff) - latest).dt.days, "purchase_days": days,
                         "same_rate_purchases": days / span * horizon, "same_rate_revenue": revenue / span * horizon,
                         "history_rate_purchases": days / history * horizon,
                         "history_rate_revenue": revenue / history * horizon})


def value_scores(scored: pd.DataFrame, churn_score: pd.Series, purchases: pd.Series | None,
                 revenue: pd.Series | None) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    valid = churn_score.notna()
    out = {"churn_auc": float(roc_auc_score(scored.loc[valid, "no_purchase"], churn_score[valid]))}
    actual_purchases, actual_revenue = scored["actual_purchases"], scored["actual_revenue"]
    if purchases is not None:
        out.update({"purchases_spearman": float(purchases.corr(actual_purchases, method="spearman")),
                    "purchases_mae": float((purchases - actual_purchases).abs().mean()),
                    "purchases_total_ratio": float(purchases.sum() / actual_purchases.sum())})
    if revenue is not None:
        out.update({"revenue_spearman": float(revenue.corr(actual_revenue, method="spearman")),
                    "revenue_mae": float((revenue - actual_revenue).abs().mean()),
                    "revenue_total_ratio": float(revenue.sum() / actual_revenue.sum())})
    return out


MODELS = ("bg_nbd", "lightgbm", "blend", "served")


def churn_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over origins; each model against the best rival (a simple rule) of each metric."""
    mean = table.groupby("method", sort=False).mean(numeric_only=True)
    return pd.concat([_model_summary(mean, model) for model in MODELS if model in mean.index], ignore_index=True)


def _model_summary(mean: pd.DataFrame, model: str) -> pd.DataFrame:
    rules = mean.drop(index=[m for m in MODELS if m in mean.index])
    rows = []
    for metric, higher_is_better in (("churn_auc", True), ("purchases_spearman", True), ("purchases_mae", False),
                                     ("revenue_spearman", True), ("revenue_mae", False),
                                     ("purchases_total_ratio", None), ("revenue_total_ratio", None)):
        values = rules[metric].dropna()
        if higher_is_better is None:  # totals: the rule nearest to 1
            rival = (values - 1).abs().idxmin()
        else:
            rival = values.idxmax() if higher_is_better else values.idxmin()
        rows.append({"model_name": model, "metric": metric, "model": mean.loc[model, metric], "best_rival": rival,
                     "rival": values[rival], "model_minus_rival": mean.loc[model, metric] - values[rival]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- recommender


def recommender(root: Path, path: Path, origins: int) -> pd.DataFrame:
    """Per origin: the shop ingested up to the origin's window end, the recommender assets run on it (their
    hold-out is that 28-day window), and rec_evaluation's table for every buyer of the window."""
    import shutil

    from ecomarket_assets.recommender.store import RecStore
    from ecomarket_assets.resources import DataDirResource, ShopSourceResource
    from ecomarket_assets.run_all import source_days
    from ecomarket_assets.settings import plain
    from ecomarket_assets.storage import DataLayout, read_frame

    use_source("online_retail", path, root)
    last = dt.date.fromisoformat(source_days(plain(ShopSourceResource), plain(DataDirResource))[1])
    tables, cache = [], None
    for k in range(origins - 1, -1, -1):
        window_end = (last - dt.timedelta(days=WINDOW * k)).isoformat()
        folder = root / f"recommender_through_{window_end}"
        use_source("online_retail", path, folder)
        start = time.perf_counter()
        run_stage("ingest", ["catalog", "customers", "reviews"])
        run_stage("ingest", ["raw_events", "user_daily_activity"], partitioned=window_end)
        if cache is not None and not (folder / "data" / "cache").exists():
            shutil.copytree(cache, folder / "data" / "cache")  # product texts are the same: encode them once
        run_stage("ingest", ["product_embeddings"])
        cache = folder / "data" / "cache"
        for stage in ("rec_candidates", "recommender_model", "rec_evaluation"):
            run_stage(stage, [stage])
        table = read_frame(RecStore(DataLayout(folder / "data")).evaluation / "metrics.parquet")
        table = table[table["users_group"] == "all"].assign(window_end=window_end)
        print(f"  recommender through {window_end}: {len(table)} methods, {time.perf_counter() - start:.0f} s",
              flush=True)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def recommender_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over origins: the ranker, raw and served, against the best rival of each metric."""
    from ecomarket_assets.recommender.evaluation import BASELINES, MODEL, SERVED

    mean = table.groupby("method").mean(numeric_only=True)
    rows = []
    for metric in ("ndcg@10", "recall@20"):
        rival = mean.loc[list(BASELINES), metric].idxmax()
        for method in (MODEL, SERVED):
            rows.append({"metric": metric, "method": method, "value": mean.loc[method, metric], "best_rival": rival,
                         "rival": mean.loc[rival, metric], "vs_rival": mean.loc[method, metric] / mean.loc[rival, metric] - 1})
    rows.append({"metric": "ndcg@10", "method": SERVED, "value": mean.loc[SERVED, "ndcg@10"], "best_rival": MODEL,
                 "rival": mean.loc[MODEL, "ndcg@10"], "vs_rival": mean.loc[SERVED, "ndcg@10"] / mean.loc[MODEL, "ndcg@10"] - 1})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- sentiment


def sentiment() -> pd.DataFrame:
    """`sentiment_benchmark.separate_shops` through the machine-wide reference cache (the UCI sentences)."""
    from ecomarket_assets.settings import plain
    from ecomarket_assets.text import embeddings as emb
    from ecomarket_assets.text import sentiment_benchmark as bench
    from ecomarket_assets.text.model import EmbeddingModelResource

    resource = plain(EmbeddingModelResource)
    embed = emb.CachedEmbedder(resource.encoder(), emb.reference_cache_path(resource.reference_cache))
    return bench.separate_shops(embed, bench.sentiment_datasets_dir(resource.sentiment_data))


# --------------------------------------------------------------------------- main


def _show(title: str, frame: pd.DataFrame) -> None:
    print(f"\n{title}\n{frame.round(4).to_string(index=False)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="demand,churn,cdnow,recommender,sentiment")
    parser.add_argument("--cdnow", type=Path, default=CDNOW)
    parser.add_argument("--path", type=Path, default=ONLINE_RETAIL)
    parser.add_argument("--data-dir", type=Path, default=None, help="a folder holding (or to hold) the shop's data/")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--origins", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--tuning-products", type=int, default=1200)
    args = parser.parse_args()
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="ecomarket-real-bench-"))
    use_source("online_retail", args.path, root)
    print(f"source: online_retail {args.path}\nworking folder: {root}", flush=True)
    walls = []
    parts = args.parts.split(",")
    if not args.skip_ingest and set(parts) - {"sentiment"}:
        for stage in ingest():
            walls.append({"stage": f"ingest {','.join(stage['meta'])}", "seconds": round(stage["seconds"], 1)})
    if "demand" in parts:
        start = time.perf_counter()
        table = demand(root / "data", args.origins, args.timeout, args.tuning_products)
        walls.append({"stage": "demand", "seconds": round(time.perf_counter() - start, 1)})
        _show("demand, per origin (28-day windows)", table)
        _show("demand, mean over origins", table.groupby("method", sort=False).mean(numeric_only=True).reset_index())
        _show("demand: the model against its best rival (mean WAPE over origins; aim: 3 % or more below)",
              demand_summary(table))
    for part, activity_of in (("churn", lambda: shop_activity(root / "data")), ("cdnow", lambda: cdnow_activity(args.cdnow))):
        if part not in parts:
            continue
        start = time.perf_counter()
        print(f"{part}: {'Online Retail' if part == 'churn' else args.cdnow}", flush=True)
        table = churn(activity_of(), args.origins)
        walls.append({"stage": part, "seconds": round(time.perf_counter() - start, 1)})
        _show(f"{part}: churn and value, per origin (90 days after each)", table)
        _show(f"{part}: each model (BG/NBD + Gamma-Gamma, LightGBM on past cutoffs) against the best rule (mean over origins)", churn_summary(table))
    if "recommender" in parts:
        start = time.perf_counter()
        table = recommender(root, args.path, args.origins)
        walls.append({"stage": "recommender", "seconds": round(time.perf_counter() - start, 1)})
        columns = ["window_end", "method", "users", "ndcg@10", "recall@20", "hit_rate@10", "catalog_coverage@10"]
        _show("recommender, per origin (buyers of each 28-day window)", table[[c for c in columns if c in table]])
        _show("recommender: the ranker (raw and served) against the best rule (mean over origins)",
              recommender_summary(table))
    if "sentiment" in parts:
        from ecomarket_assets.text.sentiment_benchmark import shops_summary

        start = time.perf_counter()
        table = sentiment()
        walls.append({"stage": "sentiment", "seconds": round(time.perf_counter() - start, 1)})
        _show("sentiment, per shop (UCI file, last 20 % in file order)", table.drop(columns="note"))
        _show("sentiment: balanced accuracy per shop and the mean over shops", shops_summary(table))
    _show("wall time per stage", pd.DataFrame(walls))


if __name__ == "__main__":
    main()
