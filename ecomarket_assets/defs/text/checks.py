"""Checks on the text assets; they re-read what was stored.

Contracts (one unit-norm vector per product, every review scored in [0, 1])
block downstream with ERROR; model quality (category separation of the
embeddings, sentiment accuracy on the Amazon sentences) is a WARN alarm.
"""


import dagster as dg
import pandas as pd

from ecomarket_assets.defs.text.assets import product_embeddings, review_insights
from ecomarket_assets.resources import DataDirResource
from ecomarket_assets.storage import read_frame
from ecomarket_assets.text import embeddings as emb
from ecomarket_assets.text import sentiment as sent
from ecomarket_assets.text.checks import check_amazon_accuracy, check_insights

AMAZON_ACCURACY_WARN = 0.7


def _result(outcome: emb.CheckOutcome, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, severity=severity, metadata=outcome.metadata)


@dg.asset_check(asset=product_embeddings, name="product_embeddings_valid", blocking=True,
                description="Exactly one embedding per catalog product, no NaN, unit norm (|norm - 1| <= 1e-3).")
def product_embeddings_valid(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    ids, vectors = emb.read_embeddings(emb.embeddings_path(layout.root))
    catalog_ids = read_frame(layout.table("catalog"), columns=["product_id"])["product_id"]
    return _result(emb.check_embeddings(ids["product_id"], vectors, catalog_ids))


@dg.asset_check(asset=product_embeddings, name="product_embeddings_category_separation", blocking=False,
                description="Alarm when products of one category are not more similar to each other than to other categories.")
def product_embeddings_category_separation(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    ids, vectors = emb.read_embeddings(emb.embeddings_path(layout.root))
    categories = read_frame(layout.table("catalog"), columns=["product_id", "category"]).set_index("product_id")["category"]
    within, across = emb.category_similarity(vectors, categories.reindex(ids["product_id"]).fillna("(unknown)"))
    evaluated = not (pd.isna(within) or pd.isna(across))
    return dg.AssetCheckResult(
        passed=bool(within > across) if evaluated else True, severity=dg.AssetCheckSeverity.WARN,
        metadata={"similarity_within_category": round(float(within), 4) if evaluated else None,
                  "similarity_across_categories": round(float(across), 4) if evaluated else None,
                  "rule": "within > across"},
    )


@dg.asset_check(asset=review_insights, name="review_insights_complete", blocking=True,
                description="Every stored review scored exactly once, scores in [0, 1], valid labels, product counts add up.")
def review_insights_complete(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    paths = sent.insights_paths(layout.root)
    stored = read_frame(layout.table("reviews"), columns=["review_id"])
    return _result(check_insights(stored, read_frame(paths["reviews"]), read_frame(paths["products"])))


@dg.asset_check(asset=review_insights, name="review_sentiment_amazon_accuracy", blocking=False,
                description=f"Alarm when the chosen sentiment model scores below {AMAZON_ACCURACY_WARN:.0%} balanced accuracy on the UCI Amazon sentences.")
def review_sentiment_amazon_accuracy(data_dir: DataDirResource) -> dg.AssetCheckResult:
    evaluation = read_frame(sent.insights_paths(data_dir.layout().root)["evaluation"])
    return _result(check_amazon_accuracy(evaluation, AMAZON_ACCURACY_WARN), dg.AssetCheckSeverity.WARN)
