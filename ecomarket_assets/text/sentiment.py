"""Review sentiment: sentence embeddings + logistic regression, or zero-shot anchors when there are no ratings.

* `train_from_ratings`: the shop's own stars are the labels (4-5 positive,
  1-2 negative; 3 stars are ambiguous and left out of training).
* `zero_shot`: no labels at all. A text's score is the difference of its cosine
  similarity to the averaged positive and the averaged negative anchor
  sentences, squashed to [0, 1]. Used when the shop has fewer than
  `MIN_PER_CLASS` rated reviews of either class.
* `SentimentModel.score(texts) -> (score in [0, 1], label)`, label by
  `label_scores` (positive >= 0.6, negative <= 0.4, neutral between).

Binary accuracy counts a score >= 0.5 as positive. How well these models do on
text they never saw is measured in `sentiment_benchmark`; the checks on the
stored outputs are in `text.checks`, the score figure in `text.plots`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ecomarket_assets.schemas import Column, TableSchema
from ecomarket_assets.storage import data_path

Embed = Callable[[Sequence[str]], np.ndarray]

POSITIVE, NEUTRAL, NEGATIVE = "positive", "neutral", "negative"
LABELS = (POSITIVE, NEUTRAL, NEGATIVE)
NEGATIVE_MAX, POSITIVE_MIN = 0.4, 0.6
MIN_PER_CLASS = 20
C = 1.0  # best 5-fold CV accuracy on yelp + imdb among 0.3 / 1 / 3 / 10 / 30 (never chosen on Amazon)
ZERO_SHOT_TEMPERATURE = 0.05  # similarity gap of +-0.1 maps to 0.88 / 0.12; does not change binary accuracy

OWN_RATINGS, EXTERNAL, ZERO_SHOT = "own_ratings", "yelp_imdb", "zero_shot"

POSITIVE_ANCHORS = (
    "This product is great, I love it.",
    "Excellent quality, it works perfectly.",
    "I am very happy with this purchase.",
    "Highly recommended, the best I have ever bought.",
    "Amazing, it exceeded my expectations.",
)
NEGATIVE_ANCHORS = (
    "This product is terrible, I hate it.",
    "Poor quality, it broke immediately.",
    "I am very disappointed with this purchase.",
    "Do not buy this, a waste of money.",
    "Awful, it did not work at all.",
)

REVIEW_SCORES = TableSchema(
    name="review_insights_reviews",
    key="review_id",
    columns=(
        Column("review_id", pa.string(), False, "review"),
        Column("product_id", pa.string(), False, "reviewed product"),
        Column("sentiment_score", pa.float64(), False, "0 = negative .. 1 = positive"),
        Column("sentiment_label", pa.string(), False, "positive (>= 0.6) | neutral | negative (<= 0.4)"),
        Column("rating", pa.int8(), True, "stars 1..5 given by the author, when known"),
    ),
)

PRODUCT_INSIGHTS = TableSchema(
    name="review_insights_products",
    key="product_id",
    columns=(
        Column("product_id", pa.string(), False, "product with at least one review"),
        Column("reviews", pa.int64(), False, "number of reviews"),
        Column("share_positive", pa.float64(), False, "share of its reviews labelled positive"),
        Column("mean_score", pa.float64(), False, "mean sentiment score"),
        Column("top_keywords", pa.list_(pa.string()), False, "key phrases from its reviews, best first"),
    ),
)


def insights_paths(root: Path) -> dict[str, Path]:
    folder = data_path(root) / "review_insights"
    return {"reviews": folder / "reviews.parquet", "products": folder / "products.parquet",
            "evaluation": folder / "evaluation.parquet"}


# --------------------------------------------------------------------------- labels


def rating_labels(ratings: Sequence | pd.Series) -> pd.Series:
    """1.0 for 4-5 stars, 0.0 for 1-2 stars, NaN for 3 stars or no rating."""
    ratings = pd.to_numeric(pd.Series(ratings).reset_index(drop=True), errors="coerce")
    return pd.Series(np.select([ratings >= 4, ratings <= 2], [1.0, 0.0], np.nan), dtype=float).where(ratings.notna())


def label_scores(scores: np.ndarray | Sequence[float], negative_max: float = NEGATIVE_MAX,
                 positive_min: float = POSITIVE_MIN) -> np.ndarray:
    """positive when score >= positive_min, negative when score <= negative_max, neutral between."""
    scores = np.asarray(scores, dtype=float)
    return np.select([scores >= positive_min, scores <= negative_max], [POSITIVE, NEGATIVE], NEUTRAL).astype(object)


def binary_accuracy(scores: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Share of texts where (score >= 0.5) equals the 0/1 label; NaN for no texts."""
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return float("nan")
    return float(((np.asarray(scores) >= 0.5).astype(int) == labels).mean())


# --------------------------------------------------------------------------- models


@dataclass
class SentimentModel:
    """Scores texts in [0, 1]. `kind` is one of own_ratings, yelp_imdb, zero_shot."""

    kind: str
    embed: Embed
    classifier: object | None = None  # a fitted LogisticRegression
    anchors: tuple[np.ndarray, np.ndarray] | None = None  # unit (positive, negative) centroids
    temperature: float = ZERO_SHOT_TEMPERATURE
    trained_on: int = 0

    def score_vectors(self, vectors: np.ndarray) -> np.ndarray:
        if len(vectors) == 0:
            return np.empty(0)
        if self.classifier is not None:
            return self.classifier.predict_proba(vectors)[:, 1].astype(float)
        positive, negative = self.anchors
        gap = vectors @ positive - vectors @ negative
        return 1.0 / (1.0 + np.exp(-gap.astype(float) / self.temperature))

    def score(self, texts: Sequence[str] | pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(scores in [0, 1], labels positive / neutral / negative) for each text."""
        scores = self.score_vectors(self.embed(list(texts)))
        return scores, label_scores(scores)


class NotEnoughRatings(ValueError):
    """Fewer rated reviews of a class than a classifier needs."""


def train_classifier(texts: Sequence[str], labels: Sequence[int], embed: Embed, kind: str) -> SentimentModel:
    """Logistic regression on the embeddings of `texts` (labels 1 positive, 0 negative), classes balanced."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, dtype=int)
    classifier = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    classifier.fit(embed(list(texts)), labels)
    return SentimentModel(kind=kind, embed=embed, classifier=classifier, trained_on=len(labels))


def class_counts(ratings: Sequence | pd.Series) -> tuple[int, int]:
    """(positive, negative) rated reviews: 4-5 stars, 1-2 stars."""
    labels = rating_labels(ratings)
    return int((labels == 1).sum()), int((labels == 0).sum())


def train_from_ratings(texts: Sequence[str] | pd.Series, ratings: Sequence | pd.Series, embed: Embed,
                       min_per_class: int = MIN_PER_CLASS) -> SentimentModel:
    """Classifier on the shop's own stars (4-5 positive, 1-2 negative, 3 and unrated left out)."""
    labels = rating_labels(ratings)
    positive, negative = class_counts(ratings)
    if min(positive, negative) < max(min_per_class, 1):
        raise NotEnoughRatings(f"{positive} positive and {negative} negative rated reviews; need {min_per_class} of each")
    keep = labels.notna().to_numpy()
    texts = pd.Series(list(texts))[keep].tolist()
    return train_classifier(texts, labels[keep].astype(int).to_numpy(), embed, OWN_RATINGS)


def zero_shot(embed: Embed, positive: Sequence[str] = POSITIVE_ANCHORS, negative: Sequence[str] = NEGATIVE_ANCHORS,
              temperature: float = ZERO_SHOT_TEMPERATURE) -> SentimentModel:
    """No labels: cosine similarity to the averaged positive minus the averaged negative anchors."""
    def centroid(sentences: Sequence[str]) -> np.ndarray:
        mean = np.asarray(embed(list(sentences)), dtype=float).mean(axis=0)
        return mean / np.linalg.norm(mean)

    return SentimentModel(kind=ZERO_SHOT, embed=embed, anchors=(centroid(positive), centroid(negative)),
                          temperature=temperature)


def choose_model(texts: Sequence[str] | pd.Series, ratings: Sequence | pd.Series, embed: Embed,
                 min_per_class: int = MIN_PER_CLASS) -> tuple[SentimentModel, str]:
    """The shop's own-ratings model when it has enough rated reviews of both classes, else zero-shot; and why."""
    positive, negative = class_counts(ratings)
    rated = int(pd.to_numeric(pd.Series(ratings), errors="coerce").notna().sum())
    if min(positive, negative) >= min_per_class:
        reason = (f"own ratings: {positive} positive (4-5 stars) and {negative} negative (1-2 stars) reviews, "
                  f">= {min_per_class} of each; {rated - positive - negative} three-star reviews left out of training")
        return train_from_ratings(texts, ratings, embed, min_per_class), reason
    reason = (f"zero-shot: only {positive} positive and {negative} negative rated reviews "
              f"(a classifier needs >= {min_per_class} of each)")
    return zero_shot(embed), reason


# --------------------------------------------------------------------------- evaluation

# --------------------------------------------------------------------------- outputs


def score_reviews(reviews: pd.DataFrame, model: SentimentModel) -> pd.DataFrame:
    """One row per review: review_id, product_id, sentiment_score, sentiment_label, rating."""
    if reviews.empty:
        return REVIEW_SCORES.empty()
    scores, labels = model.score(reviews["text"].tolist())
    return pd.DataFrame({
        "review_id": reviews["review_id"].to_numpy(), "product_id": reviews["product_id"].to_numpy(),
        "sentiment_score": scores, "sentiment_label": labels, "rating": reviews["rating"].to_numpy(),
    })[REVIEW_SCORES.names]


def product_insights(scored: pd.DataFrame, keywords: dict[str, list[str]]) -> pd.DataFrame:
    """One row per reviewed product: reviews, share_positive, mean_score, top_keywords; most reviewed first."""
    if scored.empty:
        return PRODUCT_INSIGHTS.empty()
    products = (scored.assign(positive=scored["sentiment_label"].eq(POSITIVE))
                .groupby("product_id", sort=False)
                .agg(reviews=("review_id", "size"), share_positive=("positive", "mean"),
                     mean_score=("sentiment_score", "mean"))
                .reset_index())
    products["reviews"] = products["reviews"].astype("int64")
    products["top_keywords"] = [list(keywords.get(p, [])) for p in products["product_id"]]
    return products.sort_values(["reviews", "product_id"], ascending=[False, True],
                                kind="stable").reset_index(drop=True)[PRODUCT_INSIGHTS.names]
