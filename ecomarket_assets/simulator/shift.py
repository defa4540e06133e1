"""A deliberate market shift injected into a simulated shop, for drift monitoring and retraining to react to.

From `day` on, every price rises by `price_factor` (a supplier price change) and a new category
(`NEW_CATEGORY`) takes over a share of the shoppers' attention: that share of the view, cart and
purchase events of the replaced category lands on new products of the new category instead.
Everything before `day` is left exactly as the unshifted shop had it, so ingested history stays
valid; the catalog gains the new products (they are listed from the start, sold only after `day`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

NEW_CATEGORY = "smart_home"
NEW_NOUNS = {"smart plug": 24.99, "video doorbell": 89.99, "smart bulb pack": 34.99, "thermostat": 129.99,
             "motion sensor": 19.99, "smart speaker": 59.99}
NEW_BRAND = "Homely"
SHIFTED_EVENTS = ("view", "cart", "purchase")


@dataclass(frozen=True)
class MarketShift:
    day: int  # first shifted day, counted from the shop's start date
    price_factor: float = 1.3
    new_category_share: float = 0.6  # share of the replaced category's events moved to the new category
    replaced_category: str | None = None  # default: the category with the most purchases before `day`
    seed: int = 97


def apply_shift(events: pd.DataFrame, catalog: pd.DataFrame, start: dt.date, shift: MarketShift
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, catalog) with the shift applied from `start + shift.day` on."""
    rng = np.random.default_rng(shift.seed)
    boundary = pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=shift.day)
    after = (events["event_time"] >= boundary).to_numpy()
    replaced = shift.replaced_category or _busiest_category(events[~after], catalog)
    new_products = _new_products(catalog, replaced, rng)
    events = events.copy()
    events.loc[after, "unit_price"] = (events.loc[after, "unit_price"] * shift.price_factor).round(2)
    old_ids = catalog.loc[catalog["category"] == replaced, "product_id"].to_numpy()
    twin = dict(zip(old_ids, new_products["product_id"], strict=True))
    movable = after & events["event_type"].isin(SHIFTED_EVENTS).to_numpy() & events["product_id"].isin(twin).to_numpy()
    moved = movable & _by_session(events, rng, shift.new_category_share)
    events.loc[moved, "product_id"] = events.loc[moved, "product_id"].map(twin)
    price_ratio = events.loc[moved, "product_id"].map(new_products.set_index("product_id")["price_ratio"])
    events.loc[moved, "unit_price"] = (events.loc[moved, "unit_price"] * price_ratio).round(2)
    listed = pd.concat([catalog.assign(price=(catalog["price"] * shift.price_factor).round(2)),
                        new_products.drop(columns="price_ratio")], ignore_index=True)
    return events, listed


def _busiest_category(events: pd.DataFrame, catalog: pd.DataFrame) -> str:
    bought = events.loc[events["event_type"] == "purchase", "product_id"]
    return str(bought.map(catalog.set_index("product_id")["category"]).value_counts().idxmax())


def _by_session(events: pd.DataFrame, rng: np.random.Generator, share: float) -> np.ndarray:
    """Whole sessions move together, so a basket stays in one category."""
    key = events["session_id"].fillna(events["event_id"])
    codes, uniques = pd.factorize(key)
    return (rng.random(len(uniques)) < share)[codes]


def _new_products(catalog: pd.DataFrame, replaced: str, rng: np.random.Generator) -> pd.DataFrame:
    """One new product per product of the replaced category (its 'twin' for the moved events)."""
    old = catalog[catalog["category"] == replaced].reset_index(drop=True)
    nouns = list(NEW_NOUNS)
    noun = rng.choice(nouns, len(old))
    price = np.array([NEW_NOUNS[n] for n in noun]) * rng.lognormal(0, 0.1, len(old))
    price = np.floor(price) + 0.99
    first = int(catalog["product_id"].str[1:].astype(int).max()) + 1
    ids = [f"P{first + i:05d}" for i in range(len(old))]
    return pd.DataFrame({
        "product_id": ids,
        "title": [f"{NEW_BRAND} {n.title()} {i + 1}" for i, n in enumerate(noun)],
        "description": [f"A connected {n} by {NEW_BRAND}. Works with the app and voice assistants." for n in noun],
        "category": NEW_CATEGORY,
        "brand": NEW_BRAND,
        "price": price,
        "price_ratio": price / old["price"].to_numpy(),
    })
