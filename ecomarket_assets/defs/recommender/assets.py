"""Recommender assets: candidates per cutoff -> lambdarank model in MLflow -> top-K with reasons, and the evaluation."""

import datetime as dt
import time
from dataclasses import asdict
from typing import Literal

import dagster as dg
import mlflow
import numpy as np
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.ingestion.assets import catalog, customers
from ecomarket_assets.defs.profiles.assets import user_daily_activity
from ecomarket_assets.forecasting.store import forecast_rising_ids
from ecomarket_assets.mlops import lifecycle, registry
from ecomarket_assets.mlops.tracking import MlflowResource, dagster_tags
from ecomarket_assets.profiles.state import overall_refresh
from ecomarket_assets.recommender import evaluation as ev
from ecomarket_assets.recommender import plots
from ecomarket_assets.recommender import ranker as rk
from ecomarket_assets.recommender.candidates import FEATURES, nominated
from ecomarket_assets.recommender.generators import GENERATORS, tune_ease_l2
from ecomarket_assets.recommender.pipeline import (
    fit_at,
    labelled_set,
    read_history,
    serving_set,
    use_pair_states,
)
from ecomarket_assets.recommender.rerank import (
    ServeConfig,
    add_reasons,
    category_of,
    filter_candidates,
    mmr_rerank,
    top_by_score,
    tune_serve,
)
from ecomarket_assets.recommender.rivals import TifuSettings, tune_tifu
from ecomarket_assets.recommender.store import EXPERIMENT, MODEL_NAME, CutoffPlan, RecStore
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.storage import read_frame, write_frame

GROUP = "recommender"
OWNERS = ["team:data-science"]
RECOMMENDER = lifecycle.ModelKind(MODEL_NAME, EXPERIMENT, "recommender.py", rk.ARTIFACT)


class CandidatesConfig(dg.Config):
    per_generator: int = 100
    train_windows: int = 2
    window_days: int = 28
    full_rebuild: bool = False  # rebuild every cutoff's (user, product) state from all stored days
    # "all": the labelled sets (training cutoffs, hold-out) and serving; "serving": only the serving set, keeping
    # the labelled sets of the last "all" run (a night: the weekly retrain rebuilds those). "serving" with no
    # stored labelled sets, or with other window settings, builds all.
    sets: Literal["all", "serving"] = "all"


class RecommendationsConfig(dg.Config):
    """`mmr_lambda` and `repeatable_rate` left empty: the values `recommender_model` chose for the serving model on
    its validation users (`rerank.tune_serve`); set them to override."""

    k: int = 20
    mmr_lambda: float | None = None
    repeatable_rate: float | None = None
    active_days: int = ServeConfig.active_days

    def serve(self, tuned: dict | None = None) -> ServeConfig:
        tuned = tuned or {}
        return ServeConfig(
            k=self.k, active_days=self.active_days,
            mmr_lambda=self.mmr_lambda if self.mmr_lambda is not None else tuned.get("mmr_lambda", ServeConfig.mmr_lambda),
            repeatable_rate=self.repeatable_rate if self.repeatable_rate is not None
            else tuned.get("repeatable_rate", ServeConfig.repeatable_rate))


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    # demand_forecast is optional (its rising products join the serving candidates when present); the dep
    # orders a whole-graph run and shows the lineage.
    deps=[user_daily_activity, catalog, customers, dg.AssetKey("product_embeddings"), dg.AssetKey("demand_forecast")],
    description="Candidates per user from nine generators (item-kNN, EASE, content similarity of interest and "
    "product embeddings, popular, trending, repurchase, popular in the user's country, popular in the user's "
    "categories, TIFU-KNN: the customer's recency-weighted purchases blended with their nearest customers'), "
    "each score a feature; EASE's l2 and TIFU-KNN's neighbours and blend are tuned on the first training window. Built at training cutoffs, at the hold-out cutoff (last 4 weeks) and "
    "as of the day after the last event for serving. Uses the demand forecast's rising products when a "
    "forecast has been materialized.",
)
def rec_candidates(context: dg.AssetExecutionContext, config: CandidatesConfig,
                   data_dir: DataDirResource, compute: ComputeResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = RecStore(layout)
    # The (user, product) reductions behind the generators run on the engine; the matrices stay here.
    with compute.session() as engine:
        days = layout.activity_days()
        if not days:
            raise dg.Failure("no user_daily_activity partitions: materialize raw_events and user_daily_activity first")
        fresh = CutoffPlan.for_last_day(dt.date.fromisoformat(days[-1]), config.window_days, config.train_windows)
        kept, stored, why = kept_labelled_sets(store, fresh, config.sets)
        plan = fresh if kept is None else kept
        context.log.info(f"sets to build: {why}")
        build = plan.sets() if kept is None else {"serving": plan.serving}
        # Only the label windows are read; each cutoff's history comes from its running (user, product) state.
        since = plan.train[0] if kept is None else dt.date.fromisoformat(days[-1])  # serving needs no label days
        history = read_history(layout, engine, since=since)
        states = use_pair_states(history, layout, build.values(), config.full_rebuild)
        context.log.info("pair states: " + "; ".join(f"{r.name} {r.refresh} ({r.reason}) {r.seconds:.1f} s"
                                                      for r in states))
        if kept is None:
            tuning = (history.interactions_at(plan.train[0]), history.labels(plan.train[0], plan.window_days))
            l2, grid = tune_ease_l2(*tuning)
            tifu, tifu_grid = tune_tifu(*tuning)
            context.log.info(f"EASE l2={l2}, TIFU-KNN {tifu.describe()} (NDCG@10 on {plan.train[0]}: {grid}, {tifu_grid})")
            rows = []
        else:  # the kept sets' generator settings and summary rows, as their build stored them
            l2, grid = stored["ease_l2"], {float(k): v for k, v in stored["ease_grid"].items()}
            tifu, tifu_grid = TifuSettings(**stored["tifu"]), stored["tifu_grid"]
            rows = [r for r in stored["sets"] if r["set"] != "serving"]
        sets = {}
        rising = None
        for name, cutoff in build.items():
            start = time.perf_counter()
            if name == "serving":
                rising = forecast_rising_ids(layout)
                built = serving_set(history, cutoff, l2, config.per_generator, rising, tifu)
            else:
                built = labelled_set(history, name, cutoff, plan.window_days, l2, config.per_generator, tifu)
            write_frame(built.frame, store.candidate_path(name))
            if built.labels is not None:
                write_frame(built.labels, store.labels_path(name))
            sets[name] = built
            rows.append(_set_row(built, time.perf_counter() - start))
            context.log.info(f"candidate set {len(sets)}/{len(build)} {name} (cutoff {cutoff}): "
                             f"{len(built.frame):,} rows for {len(built.users):,} users in {rows[-1]['seconds']} s")
        engine_meta = engine.metadata()
    summary = pd.DataFrame(rows)
    summary["built"] = summary["set"].isin(list(build))
    store.write_plan(plan, {"ease_l2": l2, "ease_grid": {str(k): v for k, v in grid.items()},
                            "tifu": asdict(tifu), "tifu_grid": tifu_grid, "features": FEATURES, "sets": rows,
                            "forecast_rising": 0 if rising is None else len(rising)})
    holdout_recall = (sets["holdout"].candidate_recall() if "holdout" in sets
                      else float(summary.set_index("set").loc["holdout", "candidate_recall"]))
    found_by = {} if "holdout" not in sets else {"purchases_found_by_generator": md.table(_found_by(sets["holdout"].frame))}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": int(summary["rows"].sum()),
        "plan": md.table(plan.describe()),
        "sets_built": ", ".join(build),
        "labelled_sets": why,
        "sets": md.table(summary.round(4)),
        "holdout_candidate_recall": float(holdout_recall),
        "serving_users": len(sets["serving"].users),
        "serving_cold_users": len(sets["serving"].cold_users),
        "ease_l2": l2,
        "ease_l2_grid_ndcg10": md.table({str(k): round(v, 4) for k, v in grid.items()}, "l2", "ndcg@10"),
        "tifu_knn": tifu.describe(),
        "tifu_knn_grid_ndcg10": md.table({k: round(v, 4) for k, v in tifu_grid.items()}, "settings", "ndcg@10"),
        **found_by,
        "forecast_rising_products": 0 if rising is None else len(rising),
        "refresh": overall_refresh(states),
        "pair_states": md.table(pd.DataFrame([{"state": r.name, "as_of": r.as_of, **r.metadata()} for r in states])),
        "peak_memory_gb": md.peak_memory_gb(),
        "preview": md.preview(sets["serving"].frame[["user_id", "product_id", *FEATURES[:8]]].round(3)),
        "path": dg.MetadataValue.path(str(store.candidates)),
        **engine_meta,
    })


def kept_labelled_sets(store: RecStore, fresh: CutoffPlan, sets: str) -> tuple[CutoffPlan | None, dict, str]:
    """The stored labelled cutoffs with `fresh`'s serving day and the stored plan's extras (EASE l2, set rows),
    when a serving-only night may keep them; else (None, {}, why all are built)."""
    if sets == "all":
        return None, {}, "all sets built (sets=all)"
    try:
        stored, extras = store.read_plan()
    except FileNotFoundError:
        return None, {}, "all sets built: no stored labelled sets yet"
    if (stored.window_days, len(stored.train)) != (fresh.window_days, len(fresh.train)):
        return None, {}, "all sets built: window settings changed since the labelled sets were built"
    if extras.get("features") != FEATURES:
        return None, {}, "all sets built: the stored labelled sets were built with other ranker features"
    missing = [n for n in stored.sets() if n != "serving" and not store.candidate_path(n).exists()]
    if missing or stored.holdout > fresh.holdout:
        return None, {}, "all sets built: stored labelled sets missing or ahead of the data"
    kept = CutoffPlan(stored.train, stored.holdout, fresh.serving, fresh.window_days)
    return kept, extras, (f"serving built; labelled sets kept from the build with hold-out cutoff {stored.holdout} "
                          f"({(fresh.holdout - stored.holdout).days} day(s) behind: the weekly retrain rebuilds them)")


def _set_row(built, seconds: float) -> dict:
    per_user = built.frame.groupby("user_id").size()
    return {"set": built.name, "cutoff": str(built.cutoff), "users": len(built.users),
            "cold_users": len(built.cold_users), "rows": len(built.frame),
            "min_candidates_per_user": int(per_user.min()) if len(per_user) else 0,
            "candidate_recall": built.candidate_recall(), "seconds": round(seconds, 1)}


def _found_by(frame: pd.DataFrame) -> pd.DataFrame:
    """Of the hold-out purchases that are among the candidates, the share each generator nominated."""
    hits = frame[frame["label"] > 0]
    shares = {g: float(nominated(hits["nominated_by"], g).mean()) if len(hits) else 0.0 for g in GENERATORS}
    only = {g: float((hits["nominated_by"] == (1 << i)).mean()) if len(hits) else 0.0 for i, g in enumerate(GENERATORS)}
    return pd.DataFrame({"generator": list(shares), "share_of_found_purchases": list(shares.values()),
                         "found_by_it_alone": list(only.values())}).round(4)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "lightgbm", "mlflow"},
    owners=OWNERS,
    deps=[rec_candidates],
    description="LightGBM lambdarank over candidate features. The rounds are chosen by early stopping on a user "
    "split of the training cutoffs; that model is scored on the hold-out (never trained on it) and is the "
    "version registered as `recommender` (challenger; the first version is also champion): the hold-out "
    "window stays fresh for the promotion step, while serving features still read the whole history.",
)
def recommender_model(context: dg.AssetExecutionContext, data_dir: DataDirResource,
                      mlflow_tracking: MlflowResource, compute: ComputeResource) -> dg.MaterializeResult:
    store = RecStore(data_dir.layout())
    plan, saved = store.read_plan()
    train_names = [f"train_{i + 1}" for i in range(len(plan.train))]
    frames = {name: store.read_candidates(name) for name in [*train_names, "holdout"]}
    with compute.session() as engine:  # on Dask: DaskLGBMRanker, whole users per partition
        trainer = rk.dask_trainer(engine.client, engine.workers) if engine.is_dask else None
        evaluated = rk.train_ranker([frames[n] for n in train_names], trainer=trainer)
        engine_meta = engine.metadata()
    holdout = frames["holdout"].copy()
    holdout["score"] = rk.score(evaluated.booster, holdout, evaluated.cold_policy)
    truth = store.read_labels("holdout").groupby("user_id")["product_id"].agg(set)
    holdout_ndcg = ev.mean_ndcg(ev.lists_from_rows(top_by_score(holdout, ev.K)), truth)
    serve, serve_grid = tune_serve(evaluated.validation, category_of(read_frame(data_dir.layout().table("catalog"))))
    chosen_serve = {"mmr_lambda": serve.mmr_lambda, "repeatable_rate": serve.repeatable_rate}
    described = {"rounds": evaluated.rounds, "cold_policy": evaluated.cold_policy, "serve": chosen_serve}
    rk.save_ranker(evaluated.booster, store.model / "holdout_ranker", {**described, "sets": train_names})
    served = evaluated.booster
    importance = rk.feature_importance(served)
    trained_through = str(plan.holdout - dt.timedelta(days=1))
    train_frames = [frames[n] for n in train_names]
    with lifecycle.training_run(context, mlflow_tracking, RECOMMENDER, "recommender_model",
                                {"history_until": str(plan.serving)}) as run:
        mlflow.log_params({**{k: v for k, v in rk.PARAMS.items() if k != "eval_at"}, "num_boost_round": evaluated.rounds,
                           "ease_l2": saved["ease_l2"], "tifu_knn": TifuSettings(**saved["tifu"]).describe(),
                           "train_sets": ",".join(train_names),
                           "features": len(FEATURES), "cold_policy": evaluated.cold_policy,
                           **{f"serve_{k}": v for k, v in chosen_serve.items()}})
        mlflow.log_metrics({"holdout_ndcg_at_10": holdout_ndcg, "valid_ndcg_at_10": evaluated.valid_ndcg,
                            "train_rows": evaluated.train_rows, "fit_seconds": evaluated.seconds})
        mlflow.log_table(importance, "feature_importance.json")
        mlflow.log_figure(plots.importance_figure(importance), "feature_importance.png")
        registered = run.register(
            lambda folder: rk.save_ranker(served, folder, described), train_frames[-1][FEATURES].head(20),
            trained_through=trained_through, engine=engine_meta["engine"],
            fingerprint=lifecycle.frame_fingerprint(*(f[[*FEATURES, "label"]] for f in train_frames)),
            tags={"holdout_ndcg_at_10": f"{holdout_ndcg:.4f}"})
    return dg.MaterializeResult(metadata={
        **registered.metadata(),
        "holdout_ndcg@10": holdout_ndcg,
        "valid_ndcg@10": evaluated.valid_ndcg,
        "boosting_rounds": evaluated.rounds,
        "cold_user_policy": evaluated.cold_policy,
        "serve_mmr_lambda": serve.mmr_lambda,
        "serve_repeatable_rate": serve.repeatable_rate,
        "serve_tuning": md.table(serve_grid.round(4)),
        "cold_validation_ndcg@10": md.table({k: round(v, 4) for k, v in evaluated.cold_valid_ndcg.items()},
                                            "policy", "ndcg@10"),
        "train_rows": evaluated.train_rows,
        "train_queries": evaluated.train_users,
        "fit_seconds": round(evaluated.seconds, 1),
        **engine_meta,
        "peak_memory_gb": md.peak_memory_gb(),
        "feature_importance": plots.importance(importance),
    })


@dg.asset(
    group_name=GROUP,
    kinds={"python", "mlflow", "parquet"},
    owners=OWNERS,
    deps=[recommender_model, rec_candidates, catalog],
    description="Top-K products (default 20) for every customer with an id, as of the day after the last event: "
    "serving candidates scored by the `champion` recommender from the MLflow registry, already-bought "
    "non-repeatable and inactive products filtered, an MMR re-rank for category variety, and a reason naming "
    "the product, category or country behind each line.",
)
def recommendations(config: RecommendationsConfig, data_dir: DataDirResource,
                    mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = RecStore(layout)
    plan, _ = store.read_plan()
    candidates = store.read_candidates("serving")
    champion = registry.load_champion(mlflow_tracking, MODEL_NAME)
    serve = config.serve(getattr(champion.unwrap_python_model(), "serve", None))  # chosen with that version
    version = registry.champion_version(mlflow_tracking.client(), MODEL_NAME)
    candidates["score"] = np.asarray(champion.predict(candidates[FEATURES]), dtype=float)
    kept, removed = filter_candidates(candidates, serve)
    catalog_frame = read_frame(layout.table("catalog"))
    recs = mmr_rerank(kept, category_of(catalog_frame), serve)
    country = read_frame(layout.table("customers")).drop_duplicates("user_id").set_index("user_id")["country"]
    recs = add_reasons(recs, catalog_frame, country)
    output = _output_frame(recs, catalog_frame, plan, str(version.version))
    write_frame(output, store.recommendations_path)
    per_user = output.groupby("user_id").size()
    users = candidates["user_id"].nunique()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(output),
        "users": int(per_user.size),
        "users_with_fewer_than_k": int((per_user < serve.k).sum() + (users - per_user.size)),
        "as_of": str(plan.serving),
        "champion_version": dg.MetadataValue.url(mlflow_tracking.model_version_url(MODEL_NAME, version.version)),
        "candidates_scored": len(candidates),
        "removed_by_filter": md.table(removed, "rule", "rows"),
        "mmr_lambda": serve.mmr_lambda,
        "repeatable_rate": serve.repeatable_rate,
        "reasons": md.table(output["reason_type"].value_counts().rename_axis("reason").reset_index()),
        "categories_per_top10": float(output[output["rank"] <= 10].groupby("user_id")["category"].nunique().mean()),
        "distinct_products": int(output["product_id"].nunique()),
        "preview": md.preview(output[["user_id", "rank", "product_id", "title", "score", "reason"]].round(4), 20),
        "path": dg.MetadataValue.path(str(store.recommendations_path)),
    })


def _output_frame(recs: pd.DataFrame, catalog_frame: pd.DataFrame, plan: CutoffPlan, version: str) -> pd.DataFrame:
    products = catalog_frame.drop_duplicates("product_id").set_index("product_id")
    out = recs[["user_id", "rank", "product_id", "score", "reason", "reason_type", "reason_product_id"]].copy()
    out["title"] = out["product_id"].map(products["title"])
    out["category"] = out["product_id"].map(products["category"])
    out["price"] = out["product_id"].map(products["price"])
    out["cold_user"] = (recs["user_items"] == 0).to_numpy()
    out["as_of"] = plan.serving
    out["model_version"] = version
    return out.sort_values(["user_id", "rank"], ignore_index=True)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "mlflow", "parquet"},
    owners=OWNERS,
    deps=[recommender_model, rec_candidates],
    description="The hold-out comparison (last 4 weeks): the ranker (raw, and as served after filters and MMR) "
    "against most-popular, item-kNN and EASE, for all buyers of the window and for cold users: Recall@10/20, "
    "NDCG@10, MAP@10, hit rate, catalog coverage, novelty, categories per list. Where the source knows each "
    "user's true product preferences (the built-in simulated shop), also against them.",
)
def rec_evaluation(context: dg.AssetExecutionContext, config: RecommendationsConfig, data_dir: DataDirResource,
                   source: ShopSourceResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = RecStore(layout)
    plan, saved = store.read_plan()
    # The hold-out's history is its pair state, as rec_candidates left it (same lag behind the plan's last day).
    history = read_history(layout, since=plan.holdout)
    use_pair_states(history, layout, [plan.holdout], last_day=plan.serving - dt.timedelta(days=1))
    holdout = store.read_candidates("holdout")
    holdout_meta = rk.load_meta(store.model / "holdout_ranker")
    holdout["score"] = rk.score(rk.load_ranker(store.model / "holdout_ranker"), holdout,
                                holdout_meta.get("cold_policy", "ranker"))
    serve = config.serve(holdout_meta.get("serve"))
    built = fit_at(history, plan.holdout, saved["ease_l2"], TifuSettings(**saved["tifu"]))
    truth = store.read_labels("holdout").groupby("user_id")["product_id"].agg(set)
    categories = category_of(history.catalog)
    kept, _ = filter_candidates(holdout, serve)
    lists = {ev.MODEL: ev.lists_from_rows(top_by_score(holdout, ev.K)),
             ev.SERVED: ev.lists_from_rows(mmr_rerank(kept, categories, serve)),
             **ev.baseline_lists(built, truth.index)}
    cold = truth.index[built.inter.user_rows(truth.index) < 0]
    table = ev.evaluation_table(lists, truth, cold, ev.history_popularity(built), len(history.product_ids), categories)
    write_frame(table, store.evaluation / "metrics.parquet")
    best, lift = ev.lift_over_best_baseline(table)
    best_cold, lift_cold = ev.lift_over_best_baseline(table, group="cold")
    served_best, served_lift = ev.lift_over_best_baseline(table, method=ev.SERVED)
    meta = {
        "evaluation": md.table(table.round(4)),
        "ndcg@10": float(table.query("users_group == 'all' and method == @ev.MODEL")["ndcg@10"].iloc[0]),
        "served_with": f"mmr_lambda {serve.mmr_lambda}, repeatable_rate {serve.repeatable_rate}",
        "best_baseline": best,
        "ndcg@10_lift_over_best_baseline": round(lift, 4),
        "served_ndcg@10_lift_over_best_baseline": round(served_lift, 4),
        "cold_users": len(cold),
        "cold_ndcg@10_lift_over_best_baseline": round(lift_cold, 4),
        "holdout": f"{plan.holdout} .. {plan.serving - pd.Timedelta(days=1)}",
        "plot": plots.evaluation(table),
        "path": dg.MetadataValue.path(str(store.evaluation)),
    }
    affinity = _true_affinity(source, layout, truth.index)
    if affinity is not None:
        against = ev.truth_table(lists, affinity)
        write_frame(against, store.evaluation / "against_truth.parquet")
        meta["against_true_preferences"] = md.table(against.round(4))
    with mlflow_tracking.start_run(EXPERIMENT, "rec_evaluation", dagster_tags(context)) as run:
        for row in table.to_dict("records"):
            mlflow.log_metrics({f"{row['method']}_{row['users_group']}_{k.replace('@', '_at_')}": float(v)
                                for k, v in row.items() if k not in ("method", "users_group") and pd.notna(v)})
        mlflow.log_table(table, "rec_evaluation.json")
        mlflow.log_figure(plots.evaluation_figure(table), "rec_evaluation.png")
    meta["mlflow_run"] = dg.MetadataValue.url(mlflow_tracking.run_url(run.info.run_id))
    return dg.MaterializeResult(metadata=meta)


def _true_affinity(source: ShopSourceResource, layout, users: pd.Index) -> pd.DataFrame | None:
    truth = source.truth(layout)
    return None if truth is None else truth.product_affinity(users)
