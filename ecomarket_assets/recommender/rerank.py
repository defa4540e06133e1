"""From scored candidates to what a person sees: filters, a diversity re-rank (MMR) and reasons.

Filters are counted, never silent: every removed row has a rule name. A product
is "repeatable" (consumable) when enough of its buyers buy it again; only
non-repeatable products the user already bought are filtered. A product is
inactive when it had events before but none in the last `active_days` days
(delisted or out of stock); a product never seen is a new arrival and stays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ecomarket_assets.recommender.candidates import BITS

# Reason priority when two generators rank a product equally well.
REASON_ORDER = ("repurchase", "item_knn", "ease", "tifu_knn", "content", "category_popular", "country_popular", "trending", "popular")


@dataclass(frozen=True)
class ServeConfig:
    k: int = 20
    mmr_lambda: float = 0.7  # 1 = pure score order, lower = more category variety
    mmr_pool: int = 100  # candidates per user the re-rank chooses from
    repeatable_rate: float = 0.2  # repurchase rate from which a bought product may be shown again
    active_days: int = 56


SERVE_GRID = {"mmr_lambda": (0.5, 0.7, 0.85, 1.0), "repeatable_rate": (0.0, 0.1, 0.2, 0.35)}


def tune_serve(scored: pd.DataFrame, category_of: pd.Series, base: ServeConfig = ServeConfig(),
               grid: dict[str, tuple] | None = None) -> tuple[ServeConfig, pd.DataFrame]:
    """The filter and MMR weight whose served lists score the best NDCG@10 on `scored`: validation users'
    candidate rows (`label` = bought in the window) scored by a ranker that never saw them. Chosen on data
    before the hold-out, so the hold-out still measures what serving costs.

    Coordinate search: the filter threshold in plain score order first, then the MMR weight with that filter
    (MMR is a per-user loop: 3 re-ranks instead of 12). Ties keep the stricter filter and the larger weight."""
    from ecomarket_assets.recommender.evaluation import lists_from_rows, mean_ndcg

    grid = grid or SERVE_GRID
    truth = scored[scored["label"] > 0].groupby("user_id")["product_id"].agg(set)
    rows: list[dict] = []

    def served_ndcg(weight: float, rate: float) -> float:
        config = replace(base, mmr_lambda=weight, repeatable_rate=rate)
        kept, _ = filter_candidates(scored, config)
        served = mmr_rerank(kept, category_of, config) if weight < 1 else top_by_score(kept, config.k)
        rows.append({"mmr_lambda": weight, "repeatable_rate": rate, "ndcg@10": mean_ndcg(lists_from_rows(served), truth)})
        return rows[-1]["ndcg@10"]

    rates = sorted(grid["repeatable_rate"], reverse=True)  # strictest first: it wins ties
    by_rate = {r: served_ndcg(1.0, r) for r in rates}
    rate = max(rates, key=lambda r: (by_rate[r], -rates.index(r)))
    by_weight = {1.0: by_rate[rate], **{w: served_ndcg(w, rate) for w in grid["mmr_lambda"] if w != 1.0}}
    weight = max(by_weight, key=lambda w: (by_weight[w], w))
    return replace(base, mmr_lambda=weight, repeatable_rate=rate), pd.DataFrame(rows)


def category_of(catalog: pd.DataFrame) -> pd.Series:
    """product_id -> category, one row per product."""
    return catalog.drop_duplicates("product_id").set_index("product_id")["category"]


def filter_candidates(scored: pd.DataFrame, config: ServeConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop already-bought non-repeatables and inactive products; return kept rows and counts per rule."""
    already_bought = (scored["ui_purchase_days"] > 0) & (scored["item_repurchase_rate"] < config.repeatable_rate)
    inactive = scored["item_last_seen_days"].notna() & (scored["item_last_seen_days"] > config.active_days)
    removed = {"already_bought_non_repeatable": int(already_bought.sum()),
               "inactive_product": int((inactive & ~already_bought).sum())}
    return scored[~(already_bought | inactive)], removed


def mmr_rerank(scored: pd.DataFrame, category_of: pd.Series, config: ServeConfig) -> pd.DataFrame:
    """Greedy maximal marginal relevance per user: relevance = min-max scaled score, redundancy = share of the
    already chosen products in the same category. Returns the chosen rows with `rank` 1..k."""
    pool = (scored.sort_values(["user_id", "score"], ascending=[True, False], kind="stable")
            .groupby("user_id", sort=False).head(config.mmr_pool))
    categories = pool["product_id"].map(category_of).fillna("unknown").to_numpy()
    scores = pool["score"].to_numpy(dtype=float)
    bounds = np.flatnonzero(np.r_[True, pool["user_id"].to_numpy()[1:] != pool["user_id"].to_numpy()[:-1], True])
    chosen_rows, ranks = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        picks = _mmr_one(scores[lo:hi], categories[lo:hi], config.k, config.mmr_lambda)
        chosen_rows.extend(lo + picks)
        ranks.extend(range(1, len(picks) + 1))
    out = pool.iloc[chosen_rows].copy()
    out["rank"] = np.asarray(ranks, dtype=np.int16)
    return out.reset_index(drop=True)


def _mmr_one(scores: np.ndarray, categories: np.ndarray, k: int, weight: float) -> np.ndarray:
    span = scores.max() - scores.min()
    relevance = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    codes, _ = pd.factorize(categories)
    taken_per_category = np.zeros(codes.max() + 1)
    available = np.ones(len(scores), dtype=bool)
    picks = []
    for step in range(min(k, len(scores))):
        redundancy = taken_per_category[codes] / max(step, 1)
        value = np.where(available, weight * relevance - (1 - weight) * redundancy, -np.inf)
        best = int(np.argmax(value))
        picks.append(best)
        available[best] = False
        taken_per_category[codes[best]] += 1
    return np.asarray(picks, dtype=int)


def top_by_score(scored: pd.DataFrame, k: int) -> pd.DataFrame:
    """Plain score order (no re-rank), for measuring what MMR costs and buys."""
    out = (scored.sort_values(["user_id", "score"], ascending=[True, False], kind="stable")
           .groupby("user_id", sort=False).head(k).copy())
    out["rank"] = out.groupby("user_id", sort=False).cumcount().add(1).astype(np.int16)
    return out.reset_index(drop=True)


def add_reasons(recs: pd.DataFrame, catalog: pd.DataFrame, country_of: pd.Series) -> pd.DataFrame:
    """A sentence per row naming the real product, category or country behind the recommendation."""
    title = catalog.drop_duplicates("product_id").set_index("product_id")["title"]
    category = category_of(catalog)
    texts, anchors, kinds = [], [], []
    for row in recs.itertuples(index=False):
        kind, text, anchor = _reason(row, title, category, country_of)
        texts.append(text)
        anchors.append(anchor)
        kinds.append(kind)
    return recs.assign(reason=texts, reason_product_id=anchors, reason_type=kinds)


def _reason(row, title: pd.Series, category: pd.Series, country_of: pd.Series) -> tuple[str, str, str | None]:
    options = [g for g in REASON_ORDER if row.nominated_by & BITS[g]]
    options.sort(key=lambda g: (getattr(row, f"{g}_rank"), REASON_ORDER.index(g)))
    for generator in options:
        found = _text(generator, row, title, category, country_of)
        if found is not None:
            return generator, *found
    if getattr(row, "forecast_rising", False):
        return "forecast_rising", "demand is forecast to rise over the next four weeks", None
    return "popular", "a best-seller in the shop right now", None


def _text(generator: str, row, title: pd.Series, category: pd.Series, country_of: pd.Series):
    if generator == "repurchase":
        return f"time to restock: you last bought it {int(row.ui_days_since_bought)} days ago", row.product_id
    if generator in ("item_knn", "ease") and _present(row.knn_anchor):
        verb = "bought together with" if row.knn_anchor_bought else "often viewed with"
        return f"{verb} {title.get(row.knn_anchor, row.knn_anchor)}, which you {_did(row.knn_anchor_bought)}", row.knn_anchor
    if generator in ("content", "ease") and _present(row.content_anchor):
        return (f"similar to {title.get(row.content_anchor, row.content_anchor)}, which you "
                f"{_did(row.content_anchor_bought)}", row.content_anchor)
    if generator == "tifu_knn":
        if row.ui_purchase_days > 0:
            return f"one of your regulars: you bought it on {int(row.ui_purchase_days)} days so far", row.product_id
        return "bought again and again by shoppers whose baskets look like yours", None
    if generator == "category_popular":
        return f"popular in {category.get(row.product_id, 'its category')}, a category you like", None
    if generator == "country_popular" and _present(country_of.get(row.user_id)):
        return f"popular with shoppers in {country_of.get(row.user_id)}", None
    if generator == "trending":
        return f"trending: {int(row.item_buyers_7d)} shoppers bought it this week", None
    if generator == "popular":
        return f"a best-seller: {int(row.item_buyers_28d)} shoppers bought it in the last four weeks", None
    return None


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and value != "unknown"


def _did(bought: bool) -> str:
    return "bought" if bought else "viewed"
