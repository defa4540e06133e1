"""Promotion steps: each decides whether the newest registered version replaces the champion."""


import datetime as dt
from collections.abc import Callable

import dagster as dg
import mlflow
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.campaigns import promotion as uplift_promotion
from ecomarket_assets.campaigns.inputs import read_outcomes
from ecomarket_assets.campaigns.store import EXPERIMENT as UPLIFT_EXPERIMENT
from ecomarket_assets.campaigns.store import MODEL_NAME as UPLIFT_MODEL
from ecomarket_assets.campaigns.store import CampaignStore
from ecomarket_assets.defs.campaigns.assets import campaign_results, campaign_uplift_model
from ecomarket_assets.defs.forecasting.assets import demand_model, demand_training_set
from ecomarket_assets.defs.recommender.assets import rec_candidates, recommender_model
from ecomarket_assets.forecasting import promotion as demand_promotion
from ecomarket_assets.forecasting.store import EXPERIMENT as DEMAND_EXPERIMENT
from ecomarket_assets.forecasting.store import MODEL_NAME as DEMAND_MODEL
from ecomarket_assets.forecasting.store import ForecastStore
from ecomarket_assets.mlops import lifecycle, promotion, registry
from ecomarket_assets.mlops.tracking import MlflowResource, dagster_tags
from ecomarket_assets.recommender import promotion as rec_promotion
from ecomarket_assets.recommender import ranker as rk
from ecomarket_assets.recommender.store import EXPERIMENT as REC_EXPERIMENT
from ecomarket_assets.recommender.store import MODEL_NAME as REC_MODEL
from ecomarket_assets.recommender.store import RecStore
from ecomarket_assets.resources import DataDirResource

GROUP = "operations"
OWNERS = ["team:data-science"]
# (hold-out description, scorer of a version or None, why it cannot be scored)
Evaluation = tuple[str, Callable[[str], dict[str, float]] | None, str]


class PromotionConfig(dg.Config):
    """`version`: the challenger to decide on (default: the version holding the `challenger` alias).
    `allow_rolled_back`: judge a version that was rolled back (otherwise it is refused without a comparison)."""

    version: str = ""
    margin: float = -1.0  # < 0: the model's policy margin
    allow_rolled_back: bool = False


def failed_upstream_checks(context: dg.AssetExecutionContext) -> list[str]:
    """Checks on assets upstream of this one whose latest evaluation failed with ERROR severity."""
    # the definitions import this module
    from ecomarket_assets.definitions import project_asset_graph

    graph = project_asset_graph()
    upstream = dg.AssetSelection.assets(context.asset_key).upstream(include_self=False)
    check_keys = upstream.resolve_checks(graph) | dg.AssetSelection.checks_for_assets(
        *upstream.resolve(graph)).resolve_checks(graph)
    failed = []
    for key in check_keys:
        record = context.instance.get_latest_asset_check_evaluation_record(key)
        evaluation = record.evaluation if record is not None else None
        if evaluation is not None and not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failed.append(key.to_user_string())
    return sorted(failed)


def promote(context: dg.AssetExecutionContext, config: PromotionConfig, mlflow_tracking: MlflowResource,
            name: str, experiment: str, policy: promotion.PromotionPolicy,
            evaluate: Callable[[dt.date], Evaluation]) -> dg.MaterializeResult:
    """Decide, record on both versions and in an MLflow run, move `champion` on a win."""
    client = mlflow_tracking.client()
    lifecycle.reap_stale_runs(client, context.instance)
    if config.margin >= 0:
        policy = promotion.PromotionPolicy(policy.primary, policy.guards, config.margin, policy.min_holdout_days)
    challenger_mv = (client.get_model_version(name, config.version) if config.version
                     else registry.alias_version(client, name, registry.CHALLENGER))
    if challenger_mv is None:  # an answer, not a failure: e.g. too few sends for an uplift model yet
        reason = f"model {name!r} has no registered version to decide on yet"
        context.log.info(reason)
        return dg.MaterializeResult(metadata={"decision": "nothing_to_decide", "reason": reason,
                                              "champion_after": "none"})
    challenger = str(challenger_mv.version)
    current = registry.champion_version(client, name)
    champion = None if current is None else str(current.version)
    rolled_back = "" if config.allow_rolled_back else promotion.rolled_back_reason(client, name, challenger)
    failed = failed_upstream_checks(context)
    scores, holdout, stale = None, "", ""
    if champion not in (None, challenger) and not failed and not rolled_back:
        start, stale = promotion.fresh_holdout_start(client, name, [champion, challenger])
        if start is not None:
            holdout, scorer, stale = evaluate(start)
            if scorer is not None:
                scores = (scorer(champion), scorer(challenger))
    decision = promotion.decide(policy, name, challenger, champion, scores, failed, holdout, stale, rolled_back)
    run_id = _log_decision(context, mlflow_tracking, experiment, decision, scores)
    promotion.record(client, decision, {"promotion_mlflow_run": run_id, "promotion_dagster_run": context.run.run_id})
    context.log.info(f"{name} v{challenger}: {decision.outcome} ({decision.reason})")
    serving = registry.champion_version(client, name)
    return dg.MaterializeResult(metadata={
        "decision": decision.outcome,
        "reason": decision.reason,
        "challenger_version": dg.MetadataValue.url(mlflow_tracking.model_version_url(name, challenger)),
        "champion_before": champion or "none",
        "champion_after": str(serving.version),
        "holdout": holdout or "-",
        "comparison": md.table(decision.comparison.round(5)) if len(decision.comparison) else "_not compared_",
        "failed_upstream_checks": ", ".join(failed) or "none",
        "policy": md.table(_policy_rows(policy)),
        "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(run_id)),
        "rollback": f"make rollback MODEL={name}",
    })


def _policy_rows(policy: promotion.PromotionPolicy) -> pd.DataFrame:
    rows = [{"metric": policy.primary.name, "rule": f"must gain >= {policy.margin:.2%} (relative)"}]
    rows += [{"metric": g.name, "rule": f"may lose <= {g.tolerance:.4g} ({'absolute' if g.absolute else 'relative'})"}
             for g in policy.guards]
    return pd.DataFrame(rows)


def _log_decision(context: dg.AssetExecutionContext, mlflow_tracking: MlflowResource, experiment: str,
                  decision: promotion.Decision, scores: tuple[dict, dict] | None) -> str:
    tags = {**dagster_tags(context), "promotion.model": decision.model, "promotion.challenger": decision.challenger,
            "promotion.champion": decision.champion or "", "promotion.decision": decision.outcome}
    with mlflow_tracking.start_run(experiment, f"promotion_v{decision.challenger}", {**tags, **lifecycle.owner_tags()}) as run:
        mlflow.log_param("reason", decision.reason[:500])
        mlflow.log_param("holdout", decision.holdout)
        if scores is not None:
            for role, values in zip(("champion", "challenger"), scores, strict=True):
                mlflow.log_metrics({f"{role}_{promotion.metric_key(k)}": v for k, v in values.items() if pd.notna(v)})
        if len(decision.comparison):
            mlflow.log_table(decision.comparison, "comparison.json")
        return run.info.run_id


@dg.asset(
    group_name=GROUP,
    kinds={"python", "mlflow"},
    owners=OWNERS,
    deps=[demand_model, demand_training_set],
    description="Champion/challenger decision for `demand_forecaster`: both versions forecast the same fresh "
    "hold-out (the days after the later of their `trained_through` dates); the challenger takes the `champion` "
    "alias only when its WAPE beats the champion's by the margin, no guard metric is worse than tolerated and "
    "no data check upstream failed. Every decision is tagged on both versions and logged as an MLflow run.",
)
def demand_model_promotion(context: dg.AssetExecutionContext, config: PromotionConfig, data_dir: DataDirResource,
                           mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    store = ForecastStore(data_dir.layout())
    policy = demand_promotion.POLICY

    def evaluate(start: dt.date) -> Evaluation:
        panel = store.read_panel()
        origin, horizon = demand_promotion.holdout_window(panel, start)
        if horizon < policy.min_holdout_days:
            return "", None, (f"only {max(horizon, 0)} days after {start - dt.timedelta(days=1)} in the data; "
                              f"the comparison needs {policy.min_holdout_days} fresh days")
        last = panel.days[origin + horizon].date()
        client = mlflow_tracking.client()

        def scorer(version: str) -> dict[str, float]:
            model = registry.load_version(client, DEMAND_MODEL, version).unwrap_python_model().model
            return demand_promotion.score_version(panel, model, origin, horizon)

        return f"{start} .. {last} ({horizon} days)", scorer, ""

    return promote(context, config, mlflow_tracking, DEMAND_MODEL, DEMAND_EXPERIMENT, policy, evaluate)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "mlflow"},
    owners=OWNERS,
    deps=[recommender_model, rec_candidates],
    description="Champion/challenger decision for `recommender`: both versions rank the hold-out candidates "
    "(whose purchase window neither learned from) and the challenger takes `champion` only when its NDCG@10 "
    "beats the champion's by the margin, recall@10 and cold users' NDCG@10 hold, and no upstream check failed.",
)
def recommender_promotion(context: dg.AssetExecutionContext, config: PromotionConfig, data_dir: DataDirResource,
                          mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    store = RecStore(data_dir.layout())

    def evaluate(start: dt.date) -> Evaluation:
        plan, _ = store.read_plan()
        window = f"{plan.holdout} .. {plan.serving - dt.timedelta(days=1)}"
        if start > plan.holdout:
            return window, None, (f"the hold-out purchase window {window} is not fresh: a version learned from days "
                                  f"up to {start - dt.timedelta(days=1)}")
        candidates, labels = store.read_candidates("holdout"), store.read_labels("holdout")
        client = mlflow_tracking.client()

        def scorer(version: str) -> dict[str, float]:
            ranker = registry.load_version(client, REC_MODEL, version).unwrap_python_model()
            scores = rk.score(ranker.booster, candidates, ranker.cold_policy)
            return rec_promotion.score_version(candidates, scores, labels)

        return window, scorer, ""

    return promote(context, config, mlflow_tracking, REC_MODEL, REC_EXPERIMENT, rec_promotion.POLICY, evaluate)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "mlflow"},
    owners=OWNERS,
    deps=[campaign_uplift_model, campaign_results],
    description="Champion/challenger decision for `campaign_uplift`: both versions rank the completed sends whose "
    "send date neither learned from (after the later of their `trained_through` dates); the challenger takes "
    "`champion` only when its Qini beats the champion's by the margin, its incremental conversions at 30 % do "
    "not drop more than tolerated and no upstream check failed. campaign_audiences ranks by the champion.",
)
def campaign_uplift_promotion(context: dg.AssetExecutionContext, config: PromotionConfig, data_dir: DataDirResource,
                              mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    store = CampaignStore(data_dir.layout())

    def evaluate(start: dt.date) -> Evaluation:
        sends, why = uplift_promotion.fresh_sends(read_outcomes(store), start)
        if why:
            return "", None, why
        window = f"sends {sends['send_date'].min()} .. {sends['send_date'].max()} ({len(sends)} sends)"
        client = mlflow_tracking.client()

        def scorer(version: str) -> dict[str, float]:
            model = registry.load_version(client, UPLIFT_MODEL, version).unwrap_python_model().model
            return uplift_promotion.score_version(model, sends)

        return window, scorer, ""

    return promote(context, config, mlflow_tracking, UPLIFT_MODEL, UPLIFT_EXPERIMENT, uplift_promotion.POLICY,
                   evaluate)
