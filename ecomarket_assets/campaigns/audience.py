"""Who could receive a campaign, with what, where and when — before dates, caps and budgets.

Per campaign, every user the audience rule selects either stays eligible or is
removed with the first rule that excludes them (`suppressed`, `no_consent`,
`no_product`), so counts reconcile: matched = eligible + removed.
Eligible users get their offer (products from `recommendations` with reasons),
creative, channel (the first in the campaign's order the user consented to),
send minute and the scores used to rank within the budget.
Consent is the `*_opt_in` columns of `users`, which `inputs.audience_users` takes
from the current customers table (campaigns/consent.py), never from the profiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecomarket_assets.campaigns.consent import CONSENT_COLUMN, Consent
from ecomarket_assets.campaigns.specs import CampaignSpec

REMOVAL_RULES = ("suppressed", "no_consent", "no_product")
PURCHASE_HORIZON_DAYS = 90  # predicted_purchases in user_profiles counts the next 90 days
RECENT_PURCHASE_DAYS = 30  # exclude_purchased: products the user bought in this many days
PROFILE_FEATURES = ("days_since_last_order", "orders", "revenue", "avg_order_value", "events_30d", "orders_90d",
                    "tenure_days", "price_index", "churn_probability", "probability_alive", "predicted_purchases",
                    "expected_order_value", "cart_abandonment_rate")
UpliftScorer = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class OfferInputs:
    """What product rules need besides recommendations."""

    recommendations: pd.DataFrame  # user_id, rank, product_id, title, category, price, score, reason
    in_stock: set[str]  # products sold recently (no stock feed: recent sales stand in)
    rising: set[str]  # products the demand forecast expects to rise
    recent_purchases: pd.DataFrame  # user_id, product_id bought in the last RECENT_PURCHASE_DAYS


def audience_frame(profiles: pd.DataFrame, segments: pd.DataFrame | None) -> pd.DataFrame:
    """Profiles plus the segment name: the columns audience and creative rules may use."""
    frame = profiles.copy()
    if segments is not None and len(segments):
        frame = frame.merge(segments[["user_id", "segment_name"]], on="user_id", how="left")
    else:
        frame["segment_name"] = pd.NA
    return frame.reset_index(drop=True)


def build_audience(spec: CampaignSpec, users: pd.DataFrame, suppressed: set[str], offers: OfferInputs,
                   uplift: UpliftScorer | None = None) -> pd.DataFrame:
    """One row per user the audience rule matches: eligible, or removed with the first failing rule."""
    matched = users[spec.audience_rule().evaluate(users)].copy()
    matched["campaign"] = spec.name
    matched["objective"] = spec.objective
    matched["channel"] = choose_channel(matched, spec.channels)
    products = choose_products(spec, offers).reindex(matched["user_id"])
    for column in products.columns:
        matched[column] = products[column].to_numpy()
    removed = pd.Series(pd.NA, index=matched.index, dtype="object")
    removed[matched["user_id"].isin(suppressed).to_numpy()] = "suppressed"
    removed[removed.isna() & matched["channel"].isna()] = "no_consent"
    removed[removed.isna() & matched["product_ids"].isna()] = "no_product"
    matched["removed_by"] = removed
    matched["eligible"] = removed.isna()
    matched["creative_id"], matched["subject"] = choose_creative(matched, spec)
    matched["send_minute"] = send_minute(matched["preferred_hour"], spec.schedule.start_hour, spec.schedule.end_hour)
    matched["cost"] = matched["channel"].map(spec.cost_per_message).astype("float64")
    _score(matched, spec, uplift)
    return matched


def no_audiences(users: pd.DataFrame) -> pd.DataFrame:
    """The audience table when no campaign is enabled: no rows, the columns lists and checks read."""
    text = {c: pd.Series(dtype=object) for c in ("campaign", "removed_by", "channel", "creative_id", "subject")}
    numbers = {c: pd.Series(dtype="float64") for c in ("propensity", "order_value", "expected_value", "rank_score", "cost")}
    return users.iloc[:0].assign(**text, **numbers, eligible=pd.Series(dtype=bool), send_minute=pd.Series(dtype="int64"))


def choose_channel(users: pd.DataFrame, preference: list[str]) -> pd.Series:
    """The first channel in the campaign's order the user consented to (unknown consent is no)."""
    channel = pd.Series(pd.NA, index=users.index, dtype="object")
    for name in reversed(preference):
        consent = users[CONSENT_COLUMN[name]].fillna(False).astype(bool).to_numpy()
        channel[consent] = name
    return channel


def recheck_consent(audiences: pd.DataFrame, specs: list[CampaignSpec], consent: Consent) -> tuple[pd.DataFrame, int]:
    """The stored audiences with consent and suppression applied again as they are now: (audiences, rows removed).

    An eligible row whose person is now suppressed is removed as `suppressed`; one whose channel lost consent
    takes the campaign's first channel still consented (its cost follows), or is removed as `no_consent`. Nobody
    is added: a person who opted in since waits for the next campaign_audiences run (which scores them).
    """
    out = audiences.reset_index(drop=True)
    if not len(out):
        return out, 0
    by_name = {s.name: s for s in specs}
    was = out["eligible"].astype(bool).to_numpy()
    suppressed = was & consent.is_suppressed(out["user_id"])
    keeps = consent.consented(out["user_id"], out["channel"])
    for name, rows in out[was & ~suppressed & ~keeps].groupby("campaign").groups.items():
        spec = by_name.get(name)
        channel = consent.first_channel(out.loc[rows, "user_id"], spec.channels if spec else [])
        out.loc[rows, "channel"] = channel
        if spec is not None:
            out.loc[rows, "cost"] = channel.map(spec.cost_per_message).astype("float64")
    lost = was & ~suppressed & out["channel"].isna().to_numpy()
    out.loc[suppressed, "removed_by"] = "suppressed"
    out.loc[lost, "removed_by"] = "no_consent"
    out["eligible"] = out["eligible"].astype(bool) & ~suppressed & ~lost
    return out, int(suppressed.sum() + lost.sum())


def choose_products(spec: CampaignSpec, offers: OfferInputs) -> pd.DataFrame:
    """Per user the top `count` recommended products that pass the product rules (lists; no row = none)."""
    recs = offers.recommendations.sort_values(["user_id", "rank"])
    rule = spec.products
    keep = pd.Series(True, index=recs.index)
    if rule.categories:
        keep &= recs["category"].isin(rule.categories)
    if rule.in_stock:
        keep &= recs["product_id"].isin(offers.in_stock)
    if rule.forecast_rising:
        keep &= recs["product_id"].isin(offers.rising)
    if rule.exclude_purchased and len(offers.recent_purchases):
        bought = pd.MultiIndex.from_frame(offers.recent_purchases[["user_id", "product_id"]])
        keep &= ~pd.MultiIndex.from_frame(recs[["user_id", "product_id"]]).isin(bought)
    top = recs[keep].groupby("user_id", sort=False).head(rule.count)
    grouped = top.groupby("user_id", sort=False)
    return pd.DataFrame({
        "product_ids": grouped["product_id"].agg(list),
        "product_titles": grouped["title"].agg(list),
        "product_reasons": grouped["reason"].agg(list),
        "product_score": grouped["score"].first(),
        "product_price": grouped["price"].first(),
        "offer_category": grouped["category"].first(),
    })


def choose_creative(users: pd.DataFrame, spec: CampaignSpec) -> tuple[pd.Series, pd.Series]:
    """The first creative whose `when` rule matches; the last one (no rule) catches everyone else."""
    chosen = pd.Series(pd.NA, index=users.index, dtype="object")
    for creative, rule in spec.creative_rules():
        hit = chosen.isna() & (rule.evaluate(users) if rule is not None else True)
        chosen[hit] = creative.id
    creatives = {c.id: c for c in spec.creatives}
    first_title = users["product_titles"].map(lambda t: t[0] if isinstance(t, list) and t else "")
    category = users["top_category"].fillna("favourites").astype(str)
    subject = [creatives[c].render(p, cat) for c, p, cat in zip(chosen, first_title, category, strict=True)]
    return chosen, pd.Series(subject, index=users.index, dtype="object")


def send_minute(preferred_hour: pd.Series, start_hour: int, end_hour: int) -> pd.Series:
    """Minute of the day to send: the user's preferred hour, inside the campaign's window."""
    minute = (preferred_hour.astype("float64") * 60).round()
    minute = minute.fillna(start_hour * 60)
    return minute.clip(start_hour * 60, end_hour * 60 - 1).astype("int64")


def _score(users: pd.DataFrame, spec: CampaignSpec, uplift: UpliftScorer | None) -> None:
    """Propensity (order within the measurement window), order value, expected value; uplift when a model serves."""
    per_day = users["predicted_purchases"].astype("float64").fillna(0.0).clip(lower=0) / PURCHASE_HORIZON_DAYS
    users["propensity"] = 1 - np.exp(-per_day * spec.measurement_days)
    value = users["expected_order_value"].astype("float64")
    fallback = users["avg_order_value"].astype("float64")
    overall = float(np.nanmedian(fallback)) if fallback.notna().any() else 0.0
    users["order_value"] = value.fillna(fallback).fillna(overall)
    users["expected_value"] = users["propensity"] * users["order_value"]
    users["uplift_score"] = np.nan
    if uplift is not None and users["eligible"].any():
        eligible = users["eligible"].to_numpy()
        users.loc[eligible, "uplift_score"] = uplift(users.loc[eligible])
    users["rank_score"] = np.where(users["uplift_score"].notna(), users["uplift_score"] * users["order_value"],
                                   users["expected_value"])
