"""Flow outcomes and uplift, measured exactly like campaign results (campaigns/results.py).

A flow send converts when its customer orders in [send_time, send_time + measurement); the control group
(held by the same stable hash as a campaign's) says what would have happened without the message. Outcomes
are only counted for windows that have closed: by the end of the last ingested day, and at least 10 minutes
before now, since today's partition is still filling. Where the simulator's live stream knows the true response to a reminder,
the true uplift is kept beside each send, and the table says whether the interval holds it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ecomarket_assets.campaigns.results import attribute_outcomes, uplift_table
from ecomarket_assets.storage import read_frame


def flow_outcomes(sends: pd.DataFrame, purchases: pd.DataFrame, observed_until: pd.Timestamp) -> pd.DataFrame:
    frame = sends.assign(send_time=pd.to_datetime(sends["send_time"], utc=True),
                         measurement_days=sends["measurement_days"].astype("float64"))
    return attribute_outcomes(frame, purchases, observed_until)


def flow_uplift(outcomes: pd.DataFrame) -> pd.DataFrame:
    table = uplift_table(outcomes, ["flow"])
    if "true_revenue_uplift" in table:  # no revenue truth is simulated for flows: claim nothing either way
        unknown = table["true_revenue_uplift"].isna()
        table["true_revenue_within_ci"] = table["true_revenue_within_ci"].astype(object).where(~unknown, pd.NA)
    return table


def true_cart_response(root: Path) -> pd.DataFrame | None:
    """The live stream's truth per abandoned cart (user_id, session_id, true_uplift), when the simulator wrote it."""
    files = sorted((root / "simulator" / "live").glob("*/carts.parquet"))
    if not files:
        return None
    carts = pd.concat([read_frame(f) for f in files], ignore_index=True)
    carts = carts[carts["abandoned"]]
    return carts[["user_id", "session_id", "true_uplift"]].drop_duplicates(["user_id", "session_id"])


def with_truth(outcomes: pd.DataFrame, truth: pd.DataFrame | None) -> pd.DataFrame:
    """Adds true_uplift to cart flow sends the truth covers (revenue truth is not simulated for flows: NaN)."""
    if truth is None or not len(outcomes):
        return outcomes
    merged = outcomes.merge(truth, on=["user_id", "session_id"], how="left")
    if merged["true_uplift"].notna().any():
        merged["true_revenue_uplift"] = float("nan")
        return merged
    return outcomes
