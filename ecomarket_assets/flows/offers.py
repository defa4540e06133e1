"""Which products a flow message carries: the trigger's own products first, then the champion's recommendations.

The trigger's products say why the message comes now (the cart's items, the products just browsed, the one
back in stock); the rest of the slots come from the serving `recommendations` (the champion's latest lists,
with their reasons) re-ranked by the trigger's products exactly as the recommendation API re-ranks by the
session (serving/lists.products_for), skipping the trigger's products. A customer without recommendations (new,
or too little history) gets the API's popular and trending lists.
"""

from __future__ import annotations

from functools import cached_property

import pandas as pd

from ecomarket_assets.flows.specs import FlowSpec
from ecomarket_assets.serving.lists import service_for
from ecomarket_assets.storage import DataLayout, read_frame

TRIGGER_REASON = {"cart_abandoned": "Still in your cart", "browse_abandoned": "You looked at this",
                  "back_in_stock": "Back in stock", "post_purchase": "You just bought this"}


class FlowOffers:
    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout
        self.service = service_for(layout.root)  # the API's in-memory lists: read once per process, not per tick

    @property
    def model_version(self) -> str:
        recs = self.service.recs.value
        return str(recs.model_version) if recs is not None and recs.model_version is not None else ""

    @cached_property
    def titles(self) -> dict[str, str]:
        path = self.layout.table("catalog")
        if not path.exists():
            return {}
        catalog = read_frame(path, columns=["product_id", "title"]).drop_duplicates("product_id")
        return dict(zip(catalog["product_id"], catalog["title"].fillna(""), strict=True))

    def products(self, user: str, flow: FlowSpec, context: list[str]) -> list[dict]:
        """At most `flow.products.count` products: the trigger's, then the served list re-ranked by the
        trigger's products (their item-kNN / EASE neighbours move up, as in the API; cold customers get the
        popular and trending lists)."""
        chosen: list[dict] = []
        reason = TRIGGER_REASON.get(flow.trigger.type)
        if flow.products.from_trigger and reason and flow.trigger.type != "post_purchase":
            chosen = [{"product_id": p, "title": self.titles.get(p, ""), "reason": reason} for p in context]
        skip = set(context)
        served = self.service.products_for(user, context, min(50, flow.products.count + len(skip)))
        for item in (_line(i, flow) for i in served):
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


