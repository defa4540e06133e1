"""Which products a flow message carries: the trigger's own products first, then the champion's recommendations.

The trigger's products say why the message comes now (the cart's items, the products just browsed, the one
back in stock); the rest of the slots come from the serving `recommendations` (the champion's latest lists,
with their reasons) re-ranked by the trigger's products exactly as the recommendation API re-ranks by the
session (serving/lists.products_for), skipping the trigger's products. A customer without recommendations (new, or too
little history) gets the shop's best sellers of the last 28 days.
"""

from __future__ import annotations

from functools import cached_property

import pandas as pd

from ecomarket_assets.flows.specs import FlowSpec
from ecomarket_assets.recommender.store import RecStore
from ecomarket_assets.serving.lists import products_for
from ecomarket_assets.storage import DataLayout, read_frame

POPULAR_DAYS = 28
TRIGGER_REASON = {"cart_abandoned": "Still in your cart", "browse_abandoned": "You looked at this",
                  "back_in_stock": "Back in stock", "post_purchase": "You just bought this"}


class FlowOffers:
    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout

    @cached_property
    def _recommendations(self) -> dict[str, list[dict]]:
        path = RecStore(self.layout).recommendations_path
        if not path.exists():
            return {}
        frame = read_frame(path).sort_values(["user_id", "rank"])
        self._version = str(frame["model_version"].iloc[0]) if "model_version" in frame and len(frame) else ""
        rows = frame[["user_id", "product_id", "title", "reason"]].to_dict("records")
        out: dict[str, list[dict]] = {}
        for row in rows:
            out.setdefault(row.pop("user_id"), []).append(row)
        return out

    @property
    def model_version(self) -> str:
        _ = self._recommendations
        return getattr(self, "_version", "")

    @cached_property
    def titles(self) -> dict[str, str]:
        path = self.layout.table("catalog")
        if not path.exists():
            return {}
        catalog = read_frame(path, columns=["product_id", "title"]).drop_duplicates("product_id")
        return dict(zip(catalog["product_id"], catalog["title"].fillna(""), strict=True))

    @cached_property
    def popular(self) -> list[dict]:
        from ecomarket_assets.profiles import activity as act

        days = self.layout.activity_days()[-POPULAR_DAYS:]
        if not days:
            return []
        bought = act.read_days(self.layout, days).interactions
        top = bought.groupby("product_id")["purchase_units"].sum().sort_values(ascending=False).head(50)
        return [{"product_id": p, "title": self.titles.get(p, ""), "reason": "A best seller this month"}
                for p in top.index if top[p] > 0]

    def products(self, user: str, flow: FlowSpec, context: list[str]) -> list[dict]:
        """At most `flow.products.count` products: the trigger's, then the recommendations re-ranked by the
        trigger's products (their item-kNN / EASE neighbours move up, as in the API), then best sellers."""
        chosen: list[dict] = []
        reason = TRIGGER_REASON.get(flow.trigger.type)
        if flow.products.from_trigger and reason and flow.trigger.type != "post_purchase":
            chosen = [{"product_id": p, "title": self.titles.get(p, ""), "reason": reason} for p in context]
        skip = set(context)
        served = products_for(user, context, min(50, flow.products.count + len(skip)), self.layout.root)
        for item in [*(_line(i, flow) for i in served), *(self._recommendations.get(user) or self.popular)]:
            if len(chosen) >= flow.products.count:
                break
            if item["product_id"] not in skip:
                chosen.append({k: item[k] for k in ("product_id", "title", "reason")})
                skip.add(item["product_id"])
        return chosen[: flow.products.count]


def _line(item: dict, flow: FlowSpec) -> dict:
    """An API line for a message: after an order, the session reason reads as a pairing."""
    if flow.trigger.type == "post_purchase" and item.get("reason_type") == "session":
        item = {**item, "reason": str(item["reason"]).replace("Because you just viewed", "Goes well with")}
    return item


def last_sales(layout: DataLayout, days: int) -> pd.DataFrame:
    """product_id, last_sold_at over the stored last `days` days (seeds back_in_stock)."""
    from ecomarket_assets.profiles import activity as act

    stored = layout.activity_days()[-days:]
    if not stored:
        return pd.DataFrame({"product_id": [], "last_sold_at": pd.to_datetime([], utc=True)})
    inter = act.read_days(layout, stored).interactions
    sold = inter[inter["purchase_units"] > 0]
    last = sold.groupby("product_id")["date"].max()
    end_of_day = pd.to_datetime(last.astype(str), utc=True) + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
    return pd.DataFrame({"product_id": last.index, "last_sold_at": end_of_day.to_numpy()})


