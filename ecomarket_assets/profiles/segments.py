"""Behavioural segments: k-means on scaled profile features, k chosen by silhouette, named by what sets each apart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

# feature -> (how to prepare it, phrase when high, phrase when low)
FEATURES: dict[str, tuple[str, str, str]] = {
    "orders": ("log", "frequent buyers", "rare buyers"),
    "revenue": ("log", "high spenders", "low spenders"),
    "avg_order_value": ("log", "big baskets", "small baskets"),
    "days_since_last_order": ("raw", "lapsed", "recent buyers"),
    "events_30d": ("log", "active browsers", "quiet lately"),
    "return_rate": ("raw", "frequent returners", "keep what they buy"),
    "cart_abandonment_rate": ("raw", "cart abandoners", "decisive"),
    "price_index": ("raw", "premium-minded", "bargain hunters"),
    "churn_probability": ("raw", "churn-prone", "loyal"),
}


@dataclass
class Segmentation:
    labels: pd.Series  # user_id -> segment id
    summary: pd.DataFrame  # one row per segment: name, description, size, share, feature means
    silhouette_by_k: dict[int, float]
    k: int


def feature_matrix(profiles: pd.DataFrame) -> pd.DataFrame:
    """Features ready for clustering: logs for heavy tails, neutral fills for users who never ordered."""
    cols = [c for c in FEATURES if c in profiles.columns]
    frame = profiles.set_index("user_id")[cols].astype(float)
    fills = {"days_since_last_order": frame["days_since_last_order"].max() + 30 if "days_since_last_order" in frame else 0,
             "price_index": 1.0, "churn_probability": 1.0}
    frame = frame.fillna({k: v for k, v in fills.items() if k in frame}).fillna(0.0)
    for col in cols:
        if FEATURES[col][0] == "log":
            frame[col] = np.log1p(frame[col].clip(lower=0))
    # winsorize: a handful of extreme users (real data has them) must not get a cluster of their own
    return frame.clip(frame.quantile(0.01), frame.quantile(0.99), axis=1)


def choose_k(x: np.ndarray, ks: range = range(3, 9), seed: int = 0, sample: int = 4000) -> tuple[int, dict[int, float]]:
    """The k with the best silhouette (computed on a sample for speed)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), min(sample, len(x)), replace=False)
    scores = {}
    for k in ks:
        if k >= len(idx):
            break
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
        scores[k] = float(silhouette_score(x[idx], labels[idx]))
    return max(scores, key=scores.get), scores


def name_segments(raw: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """Name each cluster by its two most distinctive features (z-score of its mean vs everyone)."""
    mean, std = raw.mean(), raw.std().replace(0, 1)
    rows, used = [], set()
    for seg in sorted(set(labels)):
        part = raw[labels == seg]
        z = ((part.mean() - mean) / std).dropna().sort_values(key=np.abs, ascending=False)
        phrases = [FEATURES[f][1] if z[f] > 0 else FEATURES[f][2] for f in z.index[:2]]
        name = ", ".join(phrases)
        if name in used:
            name = f"{name} ({seg})"
        used.add(name)
        details = "; ".join(f"{f} {part[f].mean():.2f} vs {mean[f]:.2f}" for f in z.index[:4])
        rows.append({"segment_id": int(seg), "segment_name": name, "description": f"compared with all users: {details}",
                     "users": len(part), "share": len(part) / len(raw), **{f"mean_{f}": part[f].mean() for f in raw.columns}})
    return pd.DataFrame(rows).sort_values("users", ascending=False, ignore_index=True)


def segment_users(profiles: pd.DataFrame, seed: int = 0, ks: range = range(3, 9)) -> Segmentation:
    features = feature_matrix(profiles)
    x = StandardScaler().fit_transform(features)
    k, scores = choose_k(x, ks, seed)
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    readable = profiles.set_index("user_id")[features.columns].astype(float)
    summary = name_segments(readable, labels)  # NaN (e.g. no orders yet) is left out of the means
    return Segmentation(pd.Series(labels, index=features.index, name="segment_id"), summary, scores, k)
