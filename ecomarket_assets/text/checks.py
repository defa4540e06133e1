"""What the review-insights checks compute, on stored tables; `defs/text/checks.py` turns it into check results.

Each function returns a `CheckOutcome` (passed, metadata) so the rule can be
tested on hand-made frames without Dagster.
"""

from __future__ import annotations

import pandas as pd

from ecomarket_assets.text.embeddings import CheckOutcome
from ecomarket_assets.text.sentiment import LABELS


def check_insights(reviews: pd.DataFrame, scored: pd.DataFrame, products: pd.DataFrame) -> CheckOutcome:
    """Every stored review scored exactly once, scores finite in [0, 1], labels valid, product counts add up."""
    ids = set(reviews["review_id"])
    scored_ids = scored["review_id"]
    score = pd.to_numeric(scored["sentiment_score"], errors="coerce")
    out_of_range = int((~score.between(0.0, 1.0)).sum())  # NaN counts as out of range
    bad_labels = int((~scored["sentiment_label"].isin(LABELS)).sum())
    unscored = len(ids - set(scored_ids))
    unknown = len(set(scored_ids) - ids)
    duplicated = int(scored_ids.duplicated().sum())
    counted = int(products["reviews"].sum()) if len(products) else 0
    passed = not (out_of_range or bad_labels or unscored or unknown or duplicated) and counted == len(scored)
    return CheckOutcome(passed, {
        "reviews": len(ids), "scored": len(scored), "unscored_reviews": unscored, "unknown_reviews": unknown,
        "duplicated_reviews": duplicated, "scores_outside_0_1": out_of_range, "invalid_labels": bad_labels,
        "reviews_counted_in_products": counted,
    })


def check_amazon_accuracy(evaluation: pd.DataFrame, threshold: float) -> CheckOutcome:
    """Passes when the chosen model's Amazon balanced accuracy is >= threshold, or when it could not be evaluated."""
    chosen = evaluation[(evaluation["dataset"] == "amazon") & evaluation["chosen"].astype(bool)]
    if chosen.empty or chosen["balanced_accuracy"].isna().all():
        note = "no reviews scored" if chosen.empty else (chosen["note"].iloc[0] or "not evaluated")
        return CheckOutcome(True, {"evaluated": False, "note": note, "threshold": threshold})
    row = chosen.iloc[0]
    figure = float(row["balanced_accuracy"])
    return CheckOutcome(figure >= threshold, {
        "evaluated": True, "model": str(row["model"]), "amazon_balanced_accuracy": round(figure, 4),
        "amazon_accuracy": round(float(row["accuracy"]), 4), "amazon_sentences": int(row["n"]), "threshold": threshold,
    })
