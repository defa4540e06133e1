"""What the campaign assets read: other stages' stored tables and the campaign's own outcomes, as frames.

audience, planner, results and uplift work on frames and never open a file;
the reading (which tables, which days, which optional inputs may be missing)
is here, so assets and checks read the same way.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ecomarket_assets.campaigns import audience as aud
from ecomarket_assets.campaigns.consent import Consent, current_consent
from ecomarket_assets.campaigns.results import attribute_outcomes
from ecomarket_assets.campaigns.store import CampaignStore
from ecomarket_assets.flows.outbox import Outbox
from ecomarket_assets.forecasting.store import forecast_rising_ids
from ecomarket_assets.profiles import activity as act
from ecomarket_assets.recommender.store import RecStore
from ecomarket_assets.storage import DataLayout, read_frame

IN_STOCK_DAYS = 14
SEND_KEY = ["campaign", "user_id", "send_date"]


def audience_users(layout: DataLayout, consent: Consent | None = None) -> pd.DataFrame:
    """User profiles with their segment name and the current consent flags (`consent`, else read now from the
    newest customers table; the profiles' own copy may be stale): the frame audience rules run on (segments are
    optional)."""
    segments_path = layout.table("user_segments")
    segments = read_frame(segments_path) if segments_path.exists() else None
    consent = consent if consent is not None else current_consent(layout)
    return consent.on_profiles(aud.audience_frame(read_frame(layout.table("user_profiles")), segments))


def offer_inputs(layout: DataLayout, as_of: dt.date) -> aud.OfferInputs:
    """Recommendations, products sold in the last IN_STOCK_DAYS (no stock feed), forecast risers, recent buys."""
    interactions = act.read_days(layout).interactions
    bought = interactions[interactions["purchase_units"] > 0]
    day = pd.to_datetime(bought["date"]).dt.date
    in_stock = set(bought.loc[day > as_of - dt.timedelta(days=IN_STOCK_DAYS), "product_id"])
    recent = bought.loc[day > as_of - dt.timedelta(days=aud.RECENT_PURCHASE_DAYS), ["user_id", "product_id"]]
    rising = forecast_rising_ids(layout, top=50)
    return aud.OfferInputs(read_frame(RecStore(layout).recommendations_path), in_stock,
                           set(rising) if rising is not None else set(), recent.drop_duplicates())


def flow_touches(layout: DataLayout) -> pd.DataFrame:
    """Triggered-flow sends as planner history (campaign "flow:<name>", user_id, send_date): a customer a flow
    touched counts against every campaign's frequency cap, as campaign sends count against a flow's."""
    sends = Outbox(layout.root).read()
    return pd.DataFrame({"campaign": "flow:" + sends["flow"].astype(str), "user_id": sends["user_id"],
                         "send_date": pd.to_datetime(sends["send_time"], utc=True).dt.date})


def observed_purchases(layout: DataLayout, lists: pd.DataFrame) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Purchase events from the first send date on, and the end of the last stored day (outcomes known until)."""
    days = sorted(p.parent.name.removeprefix("date=") for p in (layout.root / "raw_events").glob("date=*/part-0.parquet"))
    first = min(lists["send_date"]).isoformat() if len(lists) else "9999-12-31"
    frames = [read_frame(layout.raw_events_day(d)) for d in days if d >= first]
    events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["user_id", "event_time", "event_type", "order_id", "quantity", "unit_price"])
    until = pd.Timestamp(days[-1], tz="UTC") + pd.Timedelta(days=1) if days else pd.Timestamp(0, tz="UTC")
    return events[events["event_type"] == "purchase"].reset_index(drop=True), until


def read_outcomes(store: CampaignStore) -> pd.DataFrame:
    """Lists with attributed outcomes (and the true response, where the source knows it)."""
    purchases = read_frame(store.outcomes / "purchases.parquet")
    until = read_frame(store.outcomes / "observed_until.parquet")["observed_until"].iloc[0]
    sends = attribute_outcomes(store.read_lists(), purchases, pd.Timestamp(until))
    truth_path = store.outcomes / "true_response.parquet"
    if truth_path.exists():
        sends = sends.merge(read_frame(truth_path), on=SEND_KEY, how="left")
    return sends
