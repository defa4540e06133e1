"""Campaign assets: YAML specs -> eligible audiences -> dated lists with control groups -> outcomes -> uplift."""

import datetime as dt
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.campaigns import audience as aud
from ecomarket_assets.campaigns import explain, plots
from ecomarket_assets.campaigns import uplift as up
from ecomarket_assets.campaigns.consent import current_consent
from ecomarket_assets.campaigns.explain import audience_funnel, list_rule_shares
from ecomarket_assets.campaigns.guards import export_violations
from ecomarket_assets.campaigns.inputs import (
    SEND_KEY,
    audience_users,
    flow_touches,
    observed_purchases,
    offer_inputs,
    read_outcomes,
)
from ecomarket_assets.campaigns.planner import plan_campaigns
from ecomarket_assets.campaigns.results import uplift_table
from ecomarket_assets.campaigns.specs import SpecError, load_specs, specs_table
from ecomarket_assets.campaigns.store import (
    EXPERIMENT,
    MODEL_NAME,
    CampaignStore,
    export_lists,
)
from ecomarket_assets.defs.ingestion.assets import customers, raw_events
from ecomarket_assets.defs.profiles.assets import user_daily_activity, user_profiles, user_segments
from ecomarket_assets.defs.recommender.assets import recommendations
from ecomarket_assets.mlops import lifecycle, registry
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.resources import CampaignsResource, DataDirResource, ShopSourceResource
from ecomarket_assets.storage import read_frame, write_frame

GROUP = "campaigns"
OWNERS = ["team:marketing-ops"]
CAMPAIGN_UPLIFT = lifecycle.ModelKind(MODEL_NAME, EXPERIMENT, "campaign_uplift.py", up.ARTIFACT)


class AudiencesConfig(dg.Config):
    ranking: str = "auto"  # auto: uplift x order value when a campaign_uplift champion exists, else propensity x value


class ListsConfig(dg.Config):
    start_date: str = ""  # first send date; empty = the day after the profiles' as-of day
    horizon_days: int = 28


class UpliftConfig(dg.Config):
    holdout_share: float = 0.5  # the later send dates are held out for evaluation


@dg.asset(
    group_name=GROUP,
    kinds={"yaml"},
    owners=OWNERS,
    deps=[user_profiles, user_segments],
    description="Campaigns declared in YAML (`campaigns/` in the repository, or ECOMARKET_CAMPAIGNS_DIR): "
    "validated against a schema and against the profile columns their rules use; a bad file fails the run "
    "with every problem named by file and field.",
)
def campaign_specs(data_dir: DataDirResource, campaigns: CampaignsResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    folder = campaigns.folder()
    profiles = audience_users(layout)
    try:  # also a dry run: every rule is evaluated on the real profiles, so it cannot fail at send time
        specs = load_specs(folder, allowed_columns=set(profiles.columns), profiles=profiles)
    except SpecError as error:
        raise dg.Failure(description=f"campaign specs in {folder} are invalid:\n{error}") from error
    CampaignStore(layout).write_specs(specs)
    table = specs_table(specs)
    return dg.MaterializeResult(metadata={
        "campaigns": len(specs), "enabled": sum(s.enabled for s in specs),
        "specs": md.table(table), "folder": dg.MetadataValue.path(str(folder)),
    })


def _uplift_scorer(ranking: str, mlflow_tracking: MlflowResource) -> tuple[aud.UpliftScorer | None, str]:
    if ranking == "propensity":
        return None, "propensity x order value (configured)"
    version = registry.champion_version(mlflow_tracking.client(), MODEL_NAME)
    if version is None:
        if ranking == "uplift":
            raise dg.Failure(f"ranking='uplift' but {MODEL_NAME!r} has no champion: materialize campaign_uplift_model")
        return None, f"propensity x order value (no {MODEL_NAME} champion yet)"
    model = registry.load_champion(mlflow_tracking, MODEL_NAME)
    return (lambda frame: np.asarray(model.predict(up.feature_matrix(frame)), dtype=float),
            f"uplift x order value ({MODEL_NAME} v{version.version})")


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    deps=[campaign_specs, customers, user_profiles, user_segments, recommendations, user_daily_activity,
          dg.AssetKey("demand_forecast")],
    description="Per campaign, everyone its audience rule selects: eligible, or removed by the first rule that "
    "excludes them (suppression list, no consent for any of its channels, no product passing its product rules). "
    "Consent is read from the newest customers table and suppression from the suppression folder when this runs "
    "(the profiles' copy of the consent flags is never used). "
    "Eligible users carry their offer (recommended products with reasons), creative, channel, send minute, "
    "propensity, order value and the score that ranks them within the budget.",
)
def campaign_audiences(config: AudiencesConfig, data_dir: DataDirResource,
                       mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = CampaignStore(layout)
    specs = [s for s in store.read_specs() if s.enabled]
    consent = current_consent(layout)
    users = audience_users(layout, consent)
    as_of = dt.date.fromisoformat(str(users["as_of"].iloc[0]))
    offers = offer_inputs(layout, as_of)
    scorer, ranking = _uplift_scorer(config.ranking, mlflow_tracking)
    frames = [aud.build_audience(spec, users, set(consent.suppressed), offers, scorer) for spec in specs]
    audiences = pd.concat(frames, ignore_index=True) if frames else aud.no_audiences(users)
    write_frame(audiences.drop(columns=[c for c in audiences.columns if c.startswith("affinity_")]), store.audiences_path)
    funnel = audience_funnel(audiences, [s.name for s in specs])
    empty = explain.campaign_audience_reasons(funnel, specs)
    return dg.MaterializeResult(metadata={
        "as_of": as_of.isoformat(),
        "dagster/row_count": len(audiences),
        "eligible": int(audiences["eligible"].sum()),
        "why_empty": explain.audience_empty_reason(funnel, specs, users) or "not empty",
        "empty_campaigns": md.table(empty, "campaign", "why nobody is eligible"),
        "ranking": ranking,
        "funnel": md.table(funnel),
        "suppression_lists": md.table(consent.suppression_lists.groupby("list").size().rename("users").reset_index()),
        "in_stock_products": len(offers.in_stock),
        "forecast_rising_products": len(offers.rising),
        "preview": md.preview(audiences.loc[audiences["eligible"], ["campaign", "user_id", "channel", "creative_id",
                                                                     "propensity", "expected_value", "rank_score"]]),
        "path": dg.MetadataValue.path(str(store.audiences_path)),
    })


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet", "csv"},
    owners=OWNERS,
    deps=[campaign_audiences, customers],
    description="Who gets which campaign on which day: campaigns planned day by day over the horizon in priority "
    "order; each send is the best-ranked part of the eligible pool that nobody already in the campaign, nobody at "
    "the frequency cap (across campaigns) and the budget (recipients, message cost) allow. Group = stable hash of "
    "campaign and user. Consent and suppression are applied again as they are now (newest customers table, "
    "suppression folder). Per campaign and send date one CSV and one Parquet of the people to message under "
    "campaign_lists/exports/ (treatment only), and the control group apart under campaign_lists/control/. Both "
    "trees are checked before they are swapped in: a violation fails the run and leaves the previous files.",
)
def campaign_lists(config: ListsConfig, data_dir: DataDirResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = CampaignStore(layout)
    specs = store.read_specs()
    consent = current_consent(layout)  # as it is now, whatever ran since campaign_audiences
    audiences, rechecked = aud.recheck_consent(read_frame(store.audiences_path), specs, consent)
    users = audience_users(layout, consent)
    as_of = dt.date.fromisoformat(str((audiences if len(audiences) else users)["as_of"].iloc[0]))
    start = dt.date.fromisoformat(config.start_date) if config.start_date else as_of + dt.timedelta(days=1)
    history = flow_touches(layout)  # flow sends count against the campaigns' frequency caps
    plan = plan_campaigns(specs, audiences, start, config.horizon_days, history)

    def refuse_bad_exports(built: Path, built_control: Path) -> None:  # before anything is swapped in
        violations, counts = export_violations(built, plan.lists, consent, built_control)
        broken = {rule: n for rule, n in violations.items() if n}
        if broken:
            raise dg.Failure(description="campaign exports refused, the previous files are kept: "
                             + ", ".join(f"{rule} {n}" for rule, n in broken.items()),
                             metadata={**counts, **violations})

    files = export_lists(plan.lists, store.exports, store.control, refuse_bad_exports)
    write_frame(plan.lists, store.lists_path)
    write_frame(plan.funnel, store.funnel_path)
    matched = audiences.groupby("campaign").size()
    shares = list_rule_shares(audiences, plan.funnel)
    funnel = audience_funnel(audiences, [s.name for s in specs if s.enabled])
    empty = explain.campaign_list_reasons(plan.lists, plan.funnel, funnel, specs)
    meta: dict[str, object] = {
        "first_send_date": start.isoformat(),
        "flow_sends_counted_for_caps": len(history),
        "horizon_days": config.horizon_days,
        "dagster/row_count": len(plan.lists),
        "why_empty": explain.lists_empty_reason(plan.lists, plan.funnel, funnel, specs, users) or "not empty",
        "empty_campaigns": md.table(empty, "campaign", "why nobody is on its list"),
        "removed_since_audiences": rechecked,
        "treatment": int((plan.lists["group"] == "treatment").sum()),
        "control": int((plan.lists["group"] == "control").sum()),
        "distinct_recipients": int(plan.lists["user_id"].nunique()),
        "expected_value": round(float(plan.lists["expected_value"].sum()), 2),
        "message_cost": round(float(plan.lists["cost"].sum()), 2),
        "audience_matched": md.table(matched.rename("users").reset_index()),
        "share_removed_by_rule": md.table(shares),
        "per_send": md.table(plan.funnel.round(2)),
        "preview": md.preview(plan.lists[["campaign", "send_date", "send_time", "user_id", "group", "channel",
                                          "creative_id", "expected_value"]]),
        "export_files": sum(not f.stem.endswith("_control") for f in files),  # <campaign>_<date>: to import
        "control_files": sum(f.stem.endswith("_control") for f in files),
        "exports": dg.MetadataValue.path(str(store.exports)),
        "control_exports": dg.MetadataValue.path(str(store.control)),
    }
    if len(plan.lists):
        meta["plot"] = plots.sends_per_day(plan.lists)
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    deps=[campaign_lists, raw_events],
    description="Purchases that can answer the campaigns: the shop's purchase events from the first send date on. "
    "Where the source knows how customers truly answer a message (the built-in simulated shop, whose history ends "
    "before the sends), the outcomes are simulated from that true response (uplift depends on the person and the "
    "offer), and the true uplift per send is kept beside.",
)
def campaign_outcomes(data_dir: DataDirResource, source: ShopSourceResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = CampaignStore(layout)
    lists = store.read_lists()
    truth = source.truth(layout)
    if truth is not None and len(lists):
        catalog = read_frame(layout.table("catalog"))
        response = truth.campaign_response(lists, catalog)
        purchases = truth.simulate_outcomes(lists, response, catalog)
        observed_until = (lists["send_time"] + pd.to_timedelta(lists["measurement_days"], unit="D")).max()
        write_frame(pd.concat([lists[SEND_KEY], response], axis=1), store.outcomes / "true_response.parquet")
        origin = "simulated from the source's true campaign response"
    else:
        purchases, observed_until = observed_purchases(layout, lists)
        origin = "raw_events purchases"
    write_frame(purchases, store.outcomes / "purchases.parquet")
    write_frame(pd.DataFrame({"observed_until": [observed_until]}), store.outcomes / "observed_until.parquet")
    return dg.MaterializeResult(metadata={
        "origin": origin, "dagster/row_count": len(purchases),
        "why_empty": explain.NO_SENDS if not len(lists) else "not empty",
        "observed_until": str(observed_until), "path": dg.MetadataValue.path(str(store.outcomes)),
    })


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    deps=[campaign_outcomes],
    description="Each campaign's uplift once its measurement windows have closed: conversion and revenue per "
    "recipient in treatment vs control, the difference with a 95% Welch interval, incremental conversions and "
    "revenue. Per campaign (all send dates) and per send. Where the source knows the true uplift (the built-in "
    "simulated shop), also that and whether the interval holds it.",
)
def campaign_results(data_dir: DataDirResource) -> dg.MaterializeResult:
    store = CampaignStore(data_dir.layout())
    sends = read_outcomes(store)
    by_campaign = uplift_table(sends, ["campaign"])
    by_send = uplift_table(sends, ["campaign", "send_date"])
    write_frame(sends.drop(columns=["product_ids", "product_titles", "product_reasons"]), store.results / "sends.parquet")
    write_frame(by_campaign, store.results / "by_campaign.parquet")
    write_frame(by_send, store.results / "by_send.parquet")
    meta: dict[str, object] = {
        "sends_measured": int(sends["complete"].sum()),
        "sends_waiting_for_outcomes": int((~sends["complete"]).sum()),
        "by_campaign": md.table(by_campaign.round(4)),
        "by_send": md.table(by_send.round(4)),
        "incremental_revenue": round(float(by_campaign["incremental_revenue"].sum()), 2) if len(by_campaign) else 0.0,
        "why_empty": explain.results_empty_reason(sends) or "not empty",
        "path": dg.MetadataValue.path(str(store.results)),
    }
    if len(by_campaign):
        meta["plot"] = plots.uplift_intervals(by_campaign)
    if "true_within_ci" in by_campaign:
        for name, table in (("campaigns", by_campaign), ("sends", by_send)):
            measured = table["true_within_ci"].dropna()
            meta[f"{name}_with_true_uplift_in_ci"] = f"{int(measured.sum())}/{len(measured)}"
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "lightgbm", "mlflow"},
    owners=OWNERS,
    deps=[campaign_results],
    description="Who is persuadable: an X-learner (LightGBM) on past sends' treatment/control outcomes. Scored "
    "on the later send dates (never trained on them) by Qini curves against random and propensity targeting "
    "(and, where the source knows the truth, by true incremental conversions at each send's budget); that model "
    "is registered as `campaign_uplift` (challenger; the first version also champion), so the later send dates "
    "stay a fresh hold-out on which campaign_uplift_promotion compares it with the champion. "
    "campaign_audiences ranks by it once it is champion.",
)
def campaign_uplift_model(context: dg.AssetExecutionContext, config: UpliftConfig, data_dir: DataDirResource,
                          source: ShopSourceResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = CampaignStore(layout)
    everything = read_outcomes(store)
    sends = everything[everything["complete"]].reset_index(drop=True)
    dates = sorted(sends["send_date"].unique())
    train, test, split = up.split_by_send_date(sends, config.holdout_share)
    shortfall = explain.uplift_shortfall(everything, train, dates, up.MIN_SENDS_PER_ARM)
    if shortfall is not None:  # an answer, not a failure: the registry (and its champion) stay untouched
        context.log.warning(f"no uplift model registered: {shortfall}")
        return dg.MaterializeResult(metadata={
            "registered": False, "why_no_model": shortfall, "sends": len(everything), "completed_sends": len(sends),
            "completed_send_dates": len(dates)})
    evaluated = up.fit_x_learner(train)
    evaluation = up.evaluate_targeting(evaluated, test)
    truth = source.truth(layout)
    at_budget = None
    if truth is not None:
        pools = read_frame(store.audiences_path)
        at_budget = up.true_targeting_at_budget(evaluated, pools, test, truth, read_frame(layout.table("catalog")))
    trained_through = str(pd.Timestamp(split).date() - dt.timedelta(days=1))
    with lifecycle.training_run(context, mlflow_tracking, CAMPAIGN_UPLIFT, "campaign_uplift_model",
                                {"train_until": str(split)}) as run:
        mlflow.log_params({**{k: v for k, v in up.PARAMS.items()}, "rounds": up.ROUNDS, "learner": "x-learner",
                           "train_sends": len(train), "holdout_sends": len(test), "holdout_from": str(split)})
        metrics = {f"qini_{row['method']}": row["qini"] for row in evaluation.summary.to_dict("records")}
        if at_budget is not None:
            metrics |= {f"true_incremental_{m}": v for m, v in at_budget.totals.items()}
        mlflow.log_metrics(metrics)
        mlflow.log_figure(plots.qini_figure(evaluation.curves), "qini.png")
        # the version registered learned from the earlier send dates only: the later ones stay a fresh
        # hold-out on which the promotion step compares it with the champion
        registered = run.register(evaluated.save, up.feature_matrix(train.head(20)), trained_through=trained_through,
                                  engine="local", fingerprint=lifecycle.frame_fingerprint(
                                      up.feature_matrix(train), train[["group", "converted"]]),
                                  tags={"qini_uplift": f"{metrics['qini_uplift']:.4f}"})
    write_frame(evaluation.summary, store.uplift / "qini_summary.parquet")
    meta: dict[str, object] = {
        **registered.metadata(),
        "train_sends": len(train), "holdout_sends": len(test), "holdout_from": str(split),
        "qini": md.table(evaluation.summary.round(4)),
        "qini_plot": plots.qini(evaluation.curves),
    }
    if at_budget is not None:
        write_frame(at_budget.per_send, store.uplift / "true_targeting_at_budget.parquet")
        meta["true_incremental_conversions_at_budget"] = md.table(
            pd.DataFrame({"method": list(at_budget.totals), "incremental_conversions": list(at_budget.totals.values())}).round(2))
        meta["uplift_vs_propensity_true_gain"] = round(at_budget.totals["uplift"] / max(at_budget.totals["propensity"], 1e-9) - 1, 4)
    return dg.MaterializeResult(metadata=meta)
