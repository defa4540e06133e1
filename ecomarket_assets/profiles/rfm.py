"""RFM scores (1-5) and the named segments retention marketers use."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# (recency score, frequency score) patterns -> segment; first match wins.
SEGMENTS: tuple[tuple[str, str], ...] = (
    (r"11", "lost"),
    (r"[1-2][1-2]", "hibernating"),
    (r"[1-2][3-4]", "at risk"),
    (r"[1-2]5", "can't lose them"),
    (r"3[1-2]", "about to sleep"),
    (r"33", "need attention"),
    (r"[3-4][4-5]", "loyal customers"),
    (r"41", "promising"),
    (r"51", "new customers"),
    (r"[4-5][2-3]", "potential loyalists"),
    (r"5[4-5]", "champions"),
)
NO_ORDERS = "prospects"


def quintile_scores(values: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """Scores 1..5 by quintile of rank; equal values get equal scores."""
    if values.empty:
        return pd.Series(dtype="int64")
    ranks = values.rank(method="average", ascending=higher_is_better, pct=True)
    return np.ceil(ranks * 5).clip(1, 5).astype("int64")


def segment_name(r: int, f: int) -> str:
    key = f"{r}{f}"
    return next(name for pattern, name in SEGMENTS if re.fullmatch(pattern, key))


def rfm_table(recency_days: pd.Series, frequency: pd.Series, monetary: pd.Series) -> pd.DataFrame:
    """Scores among buyers (frequency > 0); users who never ordered are `prospects` with no scores."""
    buyers = frequency > 0
    out = pd.DataFrame(index=frequency.index)
    out["r_score"] = quintile_scores(recency_days[buyers], higher_is_better=False)
    out["f_score"] = quintile_scores(frequency[buyers])
    out["m_score"] = quintile_scores(monetary[buyers])
    out[["r_score", "f_score", "m_score"]] = out[["r_score", "f_score", "m_score"]].astype("Int64")
    out["rfm_score"] = (out["r_score"].astype(str) + out["f_score"].astype(str) + out["m_score"].astype(str)).where(buyers)
    out["rfm_segment"] = [
        segment_name(int(r), int(f)) if b else NO_ORDERS
        for r, f, b in zip(out["r_score"].fillna(0), out["f_score"].fillna(0), buyers, strict=True)
    ]
    return out
