"""Forecasting assets: sales panel -> tuned LightGBM in MLflow -> 28-day forecast, and the backtest."""

import time

import dagster as dg
import mlflow
import numpy as np
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.ingestion.assets import catalog, raw_events
from ecomarket_assets.forecasting import backtest as bt
from ecomarket_assets.forecasting import forecast as fc
from ecomarket_assets.forecasting import model as dm
from ecomarket_assets.forecasting import plots, retrain
from ecomarket_assets.forecasting import training as tr
from ecomarket_assets.forecasting.features import PRODUCT_FEATURES, EmbeddingBasis, PanelSums
from ecomarket_assets.forecasting.model import feature_importance
from ecomarket_assets.forecasting.panel import calendar_to_frame
from ecomarket_assets.forecasting.refresh import refresh_demand_state
from ecomarket_assets.forecasting.serving import ARTIFACT, save_model
from ecomarket_assets.forecasting.store import (
    EXPERIMENT,
    MODEL_NAME,
    ForecastStore,
    tuning_from_dict,
)
from ecomarket_assets.mlops import lifecycle, registry
from ecomarket_assets.mlops.tracking import MlflowResource, dagster_tags
from ecomarket_assets.resources import DataDirResource, ForecastTrainingResource, ShopSourceResource
from ecomarket_assets.storage import read_frame, write_frame
from ecomarket_assets.text.embeddings import embeddings_path, read_embeddings

GROUP = "forecasting"
SEARCH_RECORD = ("tuned_through", "units_per_day", "feature_names", "study")  # carried by warm retrains
OWNERS = ["team:data-science"]
DEMAND_FORECASTER = lifecycle.ModelKind(MODEL_NAME, EXPERIMENT, "demand_forecaster.py", ARTIFACT)


class DemandModelConfig(dg.Config):
    """Per-run knobs. The Optuna budget, the hold-out days and how often to search again are deployment settings,
    on the `forecast_training` resource (ForecastTrainingResource; the launchpad overrides them there for one run).

    `tuning`: auto (search again only when the last search is `retune_days` old, the features changed or demand's
    level shifted; otherwise refit with its choices), full (search now) or warm (refit; fails if impossible)."""

    seed: int = 7
    tuning: str = "auto"


class DemandTrainingSetConfig(dg.Config):
    """`full_rebuild`: aggregate every raw_events day and compute every feature row again, instead of folding
    in the new and changed days only (the result is the same; use it after a change to the feature code)."""

    full_rebuild: bool = False


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    deps=[raw_events, catalog, dg.AssetKey("product_embeddings")],
    description="Daily units sold per product from its first day on (zero days are real zeros), with views, "
    "carried-forward price and promotion; category and total roll-ups; the leak-free feature rows the model "
    "trains on (every feature of a row reads only days up to its cutoff); the sales calendar. Refreshed "
    "incrementally: only new or changed raw_events days are aggregated (per-day files) and only rows of new "
    "target days are computed; `full_rebuild` redoes everything.",
)
def demand_training_set(config: DemandTrainingSetConfig, data_dir: DataDirResource, source: ShopSourceResource,
                        compute: ComputeResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = ForecastStore(layout)
    with compute.session() as engine:  # the per-day aggregation of new event days runs on the engine
        report = refresh_demand_state(layout, source.sales_calendar, engine, full_rebuild=config.full_rebuild)
        engine_meta = engine.metadata()
    panel, rollup = report.panel, report.rollup
    basis = _embedding_basis(layout)
    if basis is not None:
        basis.save(store.basis_path)
    embedding_dimensions = 0 if basis is None else int(basis.coordinates.shape[1])
    total = rollup[rollup["level"] == "total"]
    by_category = rollup[rollup["level"] == "category"].groupby("key")["units"].sum()
    return dg.MaterializeResult(metadata={
        **report.metadata(),
        "dagster/row_count": int((~np.isnan(panel.units)).sum()),
        "products": len(panel.product_ids),
        "days": len(panel.days),
        "first_day": str(panel.days[0].date()),
        "last_day": str(panel.days[-1].date()),
        "units_sold": float(np.nansum(panel.units)),
        "zero_sales_share": float(np.nanmean(panel.units == 0)),
        "feature_rows": report.feature_rows,
        "features": len(report.appended.columns) - 3 + len(PRODUCT_FEATURES) + embedding_dimensions,
        "embedding_dimensions": embedding_dimensions,
        "sales_calendar": md.table(calendar_to_frame(panel.calendar)),
        "units_by_category": md.table(by_category.sort_values(ascending=False).rename_axis("category").reset_index()),
        "daily_units": md.daily_bars(total, "date", ["units"], "units sold per day (all products)"),
        "preview": md.preview(report.appended),
        "path": dg.MetadataValue.path(str(store.training)),
        **engine_meta,
    })


def _embedding_basis(layout) -> EmbeddingBasis | None:
    path = embeddings_path(layout.root)
    if not path.exists():
        return None
    ids, vectors = read_embeddings(path)
    return EmbeddingBasis.fit(ids["product_id"].to_numpy(), vectors)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "lightgbm", "optuna", "mlflow"},
    owners=OWNERS,
    deps=[demand_training_set],
    description="One global LightGBM (Tweedie) across products, tuned by Optuna on rolling-origin folds that "
    "end before the backtest windows, with P10/P50/P90 quantile models conformally calibrated on the same "
    "folds. The final model learns from every day but the last `holdout_days` (the fresh hold-out of the "
    "promotion step). Logged to MLflow and registered as `demand_forecaster` (new version = challenger; the "
    "first version is also champion).",
)
def demand_model(context: dg.AssetExecutionContext, config: DemandModelConfig, data_dir: DataDirResource,
                 mlflow_tracking: MlflowResource, compute: ComputeResource,
                 forecast_training: ForecastTrainingResource) -> dg.MaterializeResult:
    store = ForecastStore(data_dir.layout())
    panel, basis = store.read_panel(), store.read_basis()
    plan = tr.plan_folds(len(panel.days))
    sums = PanelSums(panel)
    train = store.read_training_set(panel, basis)  # the rows demand_training_set keeps up to date
    saved = store.last_tuning()
    choice = retrain.choose(config.tuning, saved, panel, list(train.features.columns), forecast_training.retune_days)
    context.log.info(f"tuning: {choice.mode} ({choice.reason})")
    folds = [tr.fold_data(panel, o, basis, sums) for o in plan.tuning_origins]
    sample, sample_folds = tr.tuning_sample(train, folds, forecast_training.tuning_products, config.seed)
    if choice.mode == "warm":
        tuning = tr.warm_tuning(sample, sample_folds, saved["params"], config.seed)
        searched = {k: saved[k] for k in (*SEARCH_RECORD, "tuning_products", "search_budget_seconds") if k in saved}
        context.log.info(f"warm: the last search's params, {tuning.rounds} rounds found again on today's folds")
    else:
        last_day = str(panel.days[-1].date())
        searched = {"tuned_through": last_day, "units_per_day": retrain.recent_units_per_day(panel),
                    "feature_names": list(train.features.columns), "study": f"{MODEL_NAME}-{last_day}",
                    "tuning_products": len(np.unique(sample.product_index))}
        budget = tr.search_budget(forecast_training.timeout_seconds, len(sample.target))
        searched["search_budget_seconds"] = round(budget, 1)
        context.log.info(f"Optuna searches on {searched['tuning_products']:,} of "
                         f"{len(np.unique(train.product_index)):,} products, {budget:.0f} s at most")
        tuning = tr.tune(sample, sample_folds, n_trials=forecast_training.n_trials,
                         timeout=budget, seed=config.seed, progress=context.log.info,
                         storage=store.optuna_storage(), study_name=searched["study"],
                         warm_start=saved["params"] if saved else None)
        context.log.info(f"best mean WAPE {tuning.best_wape:.4f} after {len(tuning.trials)} trials")
    start = time.perf_counter()
    origin = len(panel.days) - 1 - forecast_training.holdout_days
    with compute.session() as engine:  # the final fit (mean + 3 quantiles) is data-parallel on a Dask engine
        trainer = dm.dask_trainer(engine.client, engine.workers) if engine.is_dask else None
        model = tr.fit_final(train, tuning, basis, origin=origin, trainer=trainer)
        engine_meta = engine.metadata()
    fit_seconds = time.perf_counter() - start
    trained_through = str(panel.days[origin].date())
    store.write_final_model(model, trained_through)
    importance = feature_importance(model)
    with lifecycle.training_run(context, mlflow_tracking, DEMAND_FORECASTER, "demand_model") as run:
        _log_training(tuning, plan.describe(panel), importance, fit_seconds, len(train.target), choice)
        registered = run.register(
            lambda folder: save_model(model, folder), train.features.head(20), trained_through=trained_through,
            engine=engine_meta["engine"], fingerprint=lifecycle.frame_fingerprint(train.features),
            tags={"cv_wape": f"{tuning.best_wape:.4f}"})
    store.write_tuning(tuning, {"plan": plan.describe(panel).to_dict("records"), **searched,
                                "tuning_mode": choice.mode, "tuning_reason": choice.reason,
                                "model_version": registered.version.version, "run_id": run.run_id})
    if choice.mode == "full":
        write_frame(tuning.trials, store.model / "optuna_trials.parquet")
    return dg.MaterializeResult(metadata={
        **registered.metadata(),
        "tuning": choice.mode,
        "tuning_reason": choice.reason,
        "tuned_through": searched["tuned_through"],
        "tuning_products": searched.get("tuning_products", "all"),
        "search_budget_seconds": searched.get("search_budget_seconds", "none"),
        "cv_wape": tuning.best_wape,
        "cv_folds": md.table(tuning.fold_metrics.round(4)),
        "blend_search": md.table(tuning.blend_search.round(4)),
        "fold_plan": md.table(plan.describe(panel).astype(str)),
        "best_params": md.table({k: round(v, 5) if isinstance(v, float) else v
                                 for k, v in {**tuning.params, "num_boost_round": tuning.rounds}.items()},
                                "param", "value"),
        "optuna_trials": len(tuning.trials),
        "tuning_seconds": round(tuning.seconds, 1),
        "final_fit_seconds": round(fit_seconds, 1),
        "train_rows": len(train.target),
        **engine_meta,
        "interval_calibration": md.table({"raw P10-P90 coverage": round(tuning.calibration.coverage_before, 4),
                                          "calibrated coverage": round(tuning.calibration.coverage_after, 4),
                                          "lower offset": round(tuning.calibration.lower, 4),
                                          "upper offset": round(tuning.calibration.upper, 4),
                                          "week raw coverage (summed daily bounds)":
                                              round(tuning.calibration.week_coverage_before, 4),
                                          "week calibrated coverage": round(tuning.calibration.week_coverage_after, 4),
                                          "week buckets (summed P90 edges)": _rounded(tuning.calibration.week_edges),
                                          "week lower offsets": _rounded(tuning.calibration.week_lower),
                                          "week upper offsets": _rounded(tuning.calibration.week_upper),
                                          "weekday-mean rule's weight in forecast": tuning.calibration.blend,
                                          "level factor (expected_units)": round(tuning.calibration.level, 4),
                                          "calibration rows": tuning.calibration.calibration_rows}, "what", "value"),
        "feature_importance": plots.importance(importance),
        **({"optuna_history": plots.optuna_history(tuning.trials)} if choice.mode == "full" else {}),
    })


def _rounded(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def _log_training(tuning: tr.Tuning, plan: pd.DataFrame, importance: pd.DataFrame, fit_seconds: float,
                  rows: int, choice: retrain.TuningChoice) -> None:
    mlflow.log_params({**tuning.params, "num_boost_round": tuning.rounds, "objective": "tweedie",
                       "train_rows": rows, "tuning_folds": len(tuning.fold_metrics), "tuning_mode": choice.mode,
                       "tuning_reason": choice.reason[:500]})
    mlflow.log_metrics({"cv_wape": tuning.best_wape, "tuning_seconds": tuning.seconds, "fit_seconds": fit_seconds,
                        "interval_coverage_calibrated": tuning.calibration.coverage_after,
                        "interval_coverage_raw": tuning.calibration.coverage_before,
                        "week_interval_coverage_calibrated": tuning.calibration.week_coverage_after,
                        "level_factor": tuning.calibration.level})
    mlflow.log_table(plan.astype(str), "fold_plan.json")
    mlflow.log_table(importance, "feature_importance.json")
    mlflow.log_figure(plots.importance_figure(importance), "feature_importance.png")
    if choice.mode == "warm":  # the search it reuses is logged in the run that made it
        return
    for i, row in tuning.fold_metrics.iterrows():
        mlflow.log_metrics({"fold_wape": row["wape"], "fold_bias": row["bias"]}, step=int(i))
    mlflow.log_table(tuning.trials.astype({c: str for c in tuning.trials.columns if tuning.trials[c].dtype == object}),
                     "optuna_trials.json")
    mlflow.log_figure(plots.optuna_history_figure(tuning.trials), "optuna_history.png")


@dg.asset(
    group_name=GROUP,
    kinds={"python", "mlflow", "parquet"},
    owners=OWNERS,
    deps=[demand_model, demand_training_set],
    description="Next 28 days for every product seen so far (quiet ones too), from the `champion` version in the "
    "MLflow registry, and for catalog products not seen yet from their text neighbours' first weeks. Per product-day: `forecast` (the point forecast with the lowest WAPE: judge a product by it; it "
    "runs low in total), `expected_units` (level-corrected on the tuning windows: the column to add up for stock and "
    "revenue) and P10/P50/P90 for the day. Per product-week (demand_forecast_weekly.parquet): the summed columns and "
    "the week's own P10/P90, calibrated on week sums (do not add daily bounds up). Category and total roll-ups "
    "whose forecasts are exact sums of the products'.",
)
def demand_forecast(data_dir: DataDirResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    store = ForecastStore(data_dir.layout())
    panel = store.read_panel()
    champion = registry.load_champion(mlflow_tracking, MODEL_NAME)
    served = champion.unwrap_python_model().model
    version = registry.champion_version(mlflow_tracking.client(), MODEL_NAME)
    forecast = fc.product_forecast(panel, champion.predict, served.basis, calibration=served.calibration)
    new = fc.new_product_forecast(panel, served.basis, read_frame(data_dir.layout().table("catalog")))
    if len(new):  # concatenating an empty frame would blur the column dtypes
        forecast = pd.concat([forecast, new], ignore_index=True)
    forecast["model_version"] = str(version.version)
    rollups = fc.rollups(forecast)
    weeks = fc.product_weeks(forecast, served.calibration)
    quiet = panel.product_ids[fc.quiet_products(panel, len(panel.days) - 1)]
    write_frame(forecast, store.forecast / "demand_forecast.parquet")
    write_frame(weeks, store.forecast / "demand_forecast_weekly.parquet")
    write_frame(rollups, store.forecast / "rollups.parquet")
    total = rollups[rollups["level"] == "total"]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(forecast),
        "products": int(forecast["product_id"].nunique()),
        "champion_version": dg.MetadataValue.url(mlflow_tracking.model_version_url(MODEL_NAME, version.version)),
        "forecast_from": str(forecast["date"].min()),
        "forecast_to": str(forecast["date"].max()),
        "units_next_28_days": float(forecast["forecast"].sum()),
        "expected_units_next_28_days": float(forecast["expected_units"].sum()),
        "units_last_28_days": float(np.nansum(panel.units[:, -28:])),
        "quiet_products": len(quiet),  # no sale or view in the last 28 days, forecast all the same
        "new_products_from_text_neighbours": int(new["product_id"].nunique()),
        "quiet_products_units_next_28_days": float(forecast.loc[forecast["product_id"].isin(quiet), "forecast"].sum()),
        "week_interval_coverage_on_tuning_windows": float(served.calibration.week_coverage_after),
        "weekly_preview": md.preview(weeks.round(3)),
        "by_category": md.table(rollups[rollups["level"] == "category"].groupby("key")["forecast"].sum().round(1)
                                .sort_values(ascending=False).rename_axis("category").reset_index()),
        "rising_products": md.table(fc.rising_products(panel, forecast)),
        "plot": plots.history_and_forecast(panel, total),
        "preview": md.preview(forecast.round(3)),
        "path": dg.MetadataValue.path(str(store.forecast)),
    })


def _registered_fits(store: ForecastStore, panel, plan: tr.FoldPlan, saved: dict) -> dict:
    """Backtest origins where demand_model's final fit (same days, same tuning) is scored instead of a refit."""
    fitted = {}
    for origin in plan.backtest_origins:
        model = store.read_final_model(str(panel.days[origin].date()))
        if model is not None and model.params == {**saved["params"], "num_boost_round": saved["rounds"]}:
            fitted[origin] = model
    return fitted


@dg.asset(
    group_name=GROUP,
    kinds={"python", "lightgbm", "mlflow"},
    owners=OWNERS,
    deps=[demand_model, demand_training_set],
    description="Rolling-origin backtest over the last two 28-day windows: the model (retrained at each origin "
    "with the tuned settings; where demand_model's registered fit learned from exactly the days up to an origin, "
    "that fit itself) against seasonal naive, the same weekday's mean over 8 weeks, a 28-day moving average and "
    "AutoETS (no-trend forms). WAPE, MASE and bias "
    "per product-day and product-week; P10-P90 coverage per day and per week (the model's week bounds are its own, "
    "calibrated on week sums; coverage_week_summed_days scores the summed daily bounds). `lightgbm` is the point "
    "forecast to judge products by, `lightgbm_expected_units` the one whose totals match (bias near 0). Where the "
    "source knows the true demand rate (the built-in simulated shop), also against it.",
)
def demand_backtest(context: dg.AssetExecutionContext, data_dir: DataDirResource, source: ShopSourceResource,
                    mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = ForecastStore(layout)
    panel, basis = store.read_panel(), store.read_basis()
    saved = store.read_tuning()
    plan = tr.plan_folds(len(panel.days))
    sums = PanelSums(panel)
    train = store.read_training_set(panel, basis)
    start = time.perf_counter()
    truth = source.truth(layout)
    fitted = _registered_fits(store, panel, plan, saved)
    result = bt.run_backtest(panel, train, plan, tuning_from_dict(saved), basis,
                             None if truth is None else truth.demand(), sums, fitted)
    seconds = time.perf_counter() - start
    write_frame(result.table, store.backtest / "metrics.parquet")
    write_frame(result.predictions, store.backtest / "predictions.parquet")
    table = result.table.round(4)
    with mlflow_tracking.start_run(EXPERIMENT, "demand_backtest",
                                   {**dagster_tags(context), "model_version": str(saved["model_version"])}) as run:
        for row in result.table.to_dict("records"):
            mlflow.log_metrics({f"{row['method']}_{k}": float(v) for k, v in row.items()
                                if k != "method" and pd.notna(v)})
        mlflow.log_table(result.table, "backtest_metrics.json")
        mlflow.log_figure(plots.top_products_figure(result.predictions), "top_products.png")
    model_row = result.table.set_index("method").loc[bt.MODEL]
    meta = {
        "backtest": md.table(table),
        "per_fold": md.table(result.per_fold.round(4)),
        "model_wape": float(model_row["wape_day"]),
        "model_coverage_p10_p90": float(model_row["coverage_day"]),
        "wape_vs_seasonal_naive": float(model_row["wape_vs_seasonal_naive"]),
        "wape_vs_weekday_mean": float(model_row["wape_vs_weekday_mean"]),
        "wape_week_vs_weekday_mean": float(model_row["wape_week_vs_weekday_mean"]),
        "model_coverage_p10_p90_week": float(model_row["coverage_week"]),
        "model_coverage_week_summed_daily_bounds": float(model_row["coverage_week_summed_days"]),
        "model_bias_week": float(model_row["bias_week"]),
        "expected_units_bias_week": float(result.table.set_index("method").loc[bt.EXPECTED, "bias_week"]),
        "model_version_replayed": str(saved["model_version"]),
        "origins_scored_with_the_registered_fit": ", ".join(str(panel.days[o].date()) for o in fitted) or "none",
        "autoets_fallback_share": round(result.ets_fallback_share, 4),
        "train_seconds": round(result.train_seconds, 1),
        "wall_seconds": round(seconds, 1),
        "peak_memory_gb": md.peak_memory_gb(),
        "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(run.info.run_id)),
        "top_products": plots.top_products(result.predictions),
        "path": dg.MetadataValue.path(str(store.backtest)),
    }
    if result.truth_table is not None:
        write_frame(result.truth_table, store.backtest / "against_true_demand.parquet")
        meta["against_true_demand"] = md.table(result.truth_table.round(4))
        meta["model_wape_vs_truth"] = float(result.truth_table.set_index("method").loc[bt.MODEL, "wape_vs_truth"])
    return dg.MaterializeResult(metadata=meta)
