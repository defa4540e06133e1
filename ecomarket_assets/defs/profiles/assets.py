"""Profile assets: daily activity aggregates -> user features -> user profiles -> segments."""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from ecomarket_assets import metadata as md
from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.ingestion.assets import catalog, customers, raw_events
from ecomarket_assets.partitions import daily_partitions
from ecomarket_assets.profiles import activity as act
from ecomarket_assets.profiles import segments
from ecomarket_assets.profiles.build import build_profiles
from ecomarket_assets.profiles.features import interest_embeddings
from ecomarket_assets.profiles.user_state import features_from_state, refresh_user_state
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.storage import read_frame, write_frame, write_table
from ecomarket_assets.text.embeddings import embeddings_path, read_embeddings, vectors_to_arrow

GROUP = "profiles"
OWNERS = ["team:data-science"]


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    deps=[raw_events],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Per user and day: interactions per product, sessions/orders/revenue, events per hour. "
    "Profiles are built from these, so a new day costs one day of work.",
)
def user_daily_activity(context: dg.AssetExecutionContext, data_dir: DataDirResource,
                        compute: ComputeResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    with compute.session() as engine:  # on Dask, one task per day: a backfill's days run in parallel
        per_day = engine.map(act.summarize_day, context.partition_keys, layout=layout)
        engine_meta = engine.metadata()
    totals = {name: sum(counts[name] for counts in per_day) for name in act.TABLES}
    return dg.MaterializeResult(metadata=engine_meta | {
        "days": len(context.partition_keys),
        "user_days": totals["users"],
        "dagster/row_count": totals["interactions"],
        "rows_per_table": md.table(totals, "table", "rows"),
        "mean_active_users_per_day": totals["users"] / max(len(context.partition_keys), 1),
        "path": dg.MetadataValue.path(str(layout.root / "user_daily_activity")),
    })


def _as_of(layout) -> dt.date:
    days = layout.activity_days()
    if not days:
        raise dg.Failure("no user_daily_activity partitions yet: materialize raw_events and user_daily_activity first")
    return dt.date.fromisoformat(days[-1])


class UserProfilesConfig(dg.Config):
    refit_models: bool = False  # choose and fit the prediction models now, not only when the kept ones are 7 days old


class UserFeaturesConfig(dg.Config):
    full_rebuild: bool = False  # rebuild the running user state from every stored day instead of folding new days


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    deps=[user_daily_activity, customers, catalog],
    description="One row per user as of the newest day: basic (country, tenure, consent), behaviour "
    "(sessions, orders, AOV, return and cart-abandonment rates, 7/30/90-day activity, preferred hour and weekday) "
    "and preference (category affinity, favourite brands, price band). Built from a running per-user state "
    "(data/state/user_activity) that each refresh folds the new days into; it is rebuilt from every stored day "
    "when missing, when a folded day changed, or with `full_rebuild`.",
)
def user_features(config: UserFeaturesConfig, data_dir: DataDirResource, compute: ComputeResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    as_of = _as_of(layout)
    customers, catalog = read_frame(layout.table("customers")), read_frame(layout.table("catalog"))
    with compute.session() as engine:  # a rebuild reduces every stored day on the engine; a fold is one day, here
        state, report = refresh_user_state(layout, engine, config.full_rebuild, as_of)
        engine_meta = engine.metadata()
    features = features_from_state(state, customers, catalog, as_of)
    write_frame(features, layout.table("user_features"))
    buyers = features[features["orders"] > 0]
    return dg.MaterializeResult(metadata={
        "as_of": as_of.isoformat(),
        "dagster/row_count": len(features),
        "users_with_orders": len(buyers),
        "median_orders_of_buyers": float(buyers["orders"].median()) if len(buyers) else 0.0,
        "mean_avg_order_value": float(buyers["avg_order_value"].mean()) if len(buyers) else 0.0,
        "top_categories": md.table(features["top_category"].value_counts().head(10).rename_axis("category").reset_index()),
        "price_bands": md.table(features["price_band"].value_counts().rename_axis("band").reset_index()),
        "preview": md.preview(features),
        "path": dg.MetadataValue.path(str(layout.table("user_features"))),
        **report.metadata(),
        **engine_meta,
    })


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    deps=[user_features, user_daily_activity, dg.AssetKey("product_embeddings")],
    description="The user portrait: features + RFM scores and segment, predicted purchases and CLV over 90 days, "
    "churn probability (no purchase in 90 days) with band, expected next order date. Each prediction column comes "
    "from BG/NBD + Gamma-Gamma, the supervised LightGBM on the shop's past cutoffs, or their blend, as chosen on "
    "the shop's last 90 days (metadata prediction_model_choice), with totals calibrated there; the choice and the "
    "serving model are kept for 7 days (refit_models: true refits now). "
    "Metadata scores the models on a 90-day backtest (and against the true churn dates where the source knows "
    "them: the built-in simulated shop). "
    "Interest embeddings (engagement- and recency-weighted mean of product embeddings) sit beside it.",
)
def user_profiles(config: UserProfilesConfig, data_dir: DataDirResource,
                  source: ShopSourceResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    features = read_frame(layout.table("user_features"))
    as_of = _as_of(layout)
    truth = source.truth(layout)
    portrait = build_profiles(features, act.read_days(layout), as_of, truth_users=None if truth is None else truth.users(),
                              kept=layout.root / "user_profiles" / "prediction_models", refit=config.refit_models)
    profiles = portrait.profiles
    write_frame(profiles, layout.table("user_profiles"))
    interests = _write_interest_embeddings(layout, as_of)
    meta: dict[str, object] = {
        "as_of": as_of.isoformat(),
        "dagster/row_count": len(profiles),
        "rfm_segments": md.table(profiles["rfm_segment"].value_counts().rename_axis("segment").reset_index()),
        "churn_bands": md.table(profiles["churn_band"].value_counts().rename_axis("band").reset_index()),
        "predicted_clv_total": float(profiles["predicted_clv"].sum()),
        "users_with_interest_embedding": interests,
        "interest_embeddings_path": dg.MetadataValue.path(str(layout.root / "user_profiles" / "interest_embeddings.parquet")),
        "model_params": md.table({k: round(v, 4) for k, v in portrait.params.items()}, "param", "value"),
        "prediction_models": portrait.selection.describe(),
        "prediction_model_choice": (md.table(portrait.selection.table.round(4)) if len(portrait.selection.table)
                                    else portrait.selection.note),
        "prediction_model_note": portrait.selection.note,
        "prediction_models_made": portrait.models_made.isoformat(),
        "prediction_models_reused": portrait.models_made != as_of,
        "preview": md.preview(profiles[["user_id", "rfm_segment", "orders", "revenue", "predicted_purchases",
                                        "churn_probability", "churn_band", "predicted_clv", "expected_next_order_date"]]),
        "path": dg.MetadataValue.path(str(layout.table("user_profiles"))),
    }
    if portrait.backtest:
        metrics = portrait.backtest.metrics
        meta["backtest"] = md.table({k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}, "metric", "value")
        for key in ("churn_auc", "churn_auc_vs_true_churn", "purchases_corr", "purchases_mae", "purchases_mae_naive"):
            if key in metrics:
                meta[f"backtest_{key}"] = float(metrics[key])
        meta["backtest_plot"] = _backtest_plot(portrait.backtest.scored)
    else:
        meta["backtest"] = "not enough history for a 90-day backtest"
    return dg.MaterializeResult(metadata=meta)


def _write_interest_embeddings(layout, as_of: dt.date) -> int:
    ids, vectors = read_embeddings(embeddings_path(layout.root))
    interests = interest_embeddings(act.read_days(layout).interactions, ids["product_id"], vectors, as_of)
    matrix = np.vstack(interests["interest_embedding"].to_numpy()) if len(interests) else np.zeros((0, vectors.shape[1]))
    table = pa.table({"user_id": pa.array(interests["user_id"], type=pa.string()), "interest_embedding": vectors_to_arrow(matrix)})
    write_table(table, layout.root / "user_profiles" / "interest_embeddings.parquet")
    return len(interests)


def _backtest_plot(scored: pd.DataFrame) -> dg.MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.scatter(scored["predicted_purchases"], scored["actual_purchases"], s=6, alpha=0.4)
    top = max(scored["predicted_purchases"].max(), scored["actual_purchases"].max())
    left.plot([0, top], [0, top], color="grey", lw=1)
    left.set(xlabel="predicted purchase days (90 d)", ylabel="actual", title="purchases: backtest")
    bins = pd.cut(scored["churn_probability"], [0, 0.2, 0.4, 0.6, 0.8, 1.0], include_lowest=True)
    calibration = scored.groupby(bins, observed=True)["no_purchase"].mean()
    if len(calibration):
        calibration.plot.bar(ax=right, color="tab:red")
    else:  # the model could not score anyone at the cutoff (too little history): say so instead of a blank chart
        right.text(0.5, 0.5, "no churn predictions at the cutoff", ha="center", transform=right.transAxes)
    right.set(xlabel="predicted churn probability", ylabel="share with no purchase", title="churn calibration")
    return md.plot(fig)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "sklearn", "parquet"},
    owners=OWNERS,
    deps=[user_profiles],
    description="Behavioural segments: k-means on scaled profile features, k chosen by silhouette, "
    "each named by the features that set it apart.",
)
def user_segments(data_dir: DataDirResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    profiles = read_frame(layout.table("user_profiles"))
    result = segments.segment_users(profiles)
    assigned = result.labels.rename_axis("user_id").reset_index()
    names = result.summary.set_index("segment_id")["segment_name"]
    assigned["segment_name"] = assigned["segment_id"].map(names)
    write_frame(assigned, layout.table("user_segments"))
    write_frame(result.summary, layout.root / "user_segments" / "segment_summary.parquet")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(assigned),
        "segments": result.k,
        "silhouette_by_k": md.table({str(k): round(v, 4) for k, v in result.silhouette_by_k.items()}, "k", "silhouette"),
        "summary": md.table(result.summary[["segment_name", "users", "share", "description"]].round({"share": 3})),
        "plot": _segment_plot(profiles, result),
        "path": dg.MetadataValue.path(str(layout.table("user_segments"))),
    })


def _segment_plot(profiles: pd.DataFrame, result: segments.Segmentation) -> dg.MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(segments.feature_matrix(profiles))
    xy = PCA(n_components=2, random_state=0).fit_transform(x)
    names = result.summary.set_index("segment_id")["segment_name"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    for seg in names.index:
        mask = result.labels.to_numpy() == seg
        left.scatter(xy[mask, 0], xy[mask, 1], s=5, alpha=0.5, label=names[seg])
    left.set(title="users in profile space (PCA)", xticks=[], yticks=[])
    left.legend(fontsize=7, markerscale=3)
    result.summary.set_index("segment_name")["users"].plot.barh(ax=right, color="tab:blue")
    right.set(title="segment sizes", xlabel="users")
    return md.plot(fig)
