"""Review sentiment: sentence embeddings + logistic regression, or zero-shot anchors when there are no ratings.

* `train_from_ratings`: the shop's own stars are the labels (4-5 positive,
  1-2 negative; 3 stars are ambiguous and left out of training).
* `zero_shot`: no labels at all. A text's score is the difference of its cosine
  similarity to the averaged positive and the averaged negative anchor
  sentences, squashed to [0, 1]. Used when the shop has fewer than
  `MIN_PER_CLASS` rated reviews of either class.
* `SentimentModel.score(texts) -> (score in [0, 1], label)`, label by
  `label_scores` (positive >= 0.6, negative <= 0.4, neutral between).

Evaluation is honest: accuracy is measured on text the model never saw. The
shop model gets a time split (train on the earliest 80 % of rated reviews,
test on the latest 20 %), also reported on test texts that never occur in the
training part (simulated reviews reuse templates). Every model is also scored
on the UCI Amazon product-review sentences, which no model trains on; the
yelp + imdb files of the same collection train a reference model.
Binary accuracy counts a score >= 0.5 as positive.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ecomarket_assets.schemas import Column, TableSchema
from ecomarket_assets.storage import REPO_ROOT, data_path

Embed = Callable[[Sequence[str]], np.ndarray]

POSITIVE, NEUTRAL, NEGATIVE = "positive", "neutral", "negative"
LABELS = (POSITIVE, NEUTRAL, NEGATIVE)
NEGATIVE_MAX, POSITIVE_MIN = 0.4, 0.6
MIN_PER_CLASS = 20
TEST_SHARE = 0.2
C = 1.0  # best 5-fold CV accuracy on yelp + imdb among 0.3 / 1 / 3 / 10 / 30 (never chosen on Amazon)
ZERO_SHOT_TEMPERATURE = 0.05  # similarity gap of +-0.1 maps to 0.88 / 0.12; does not change binary accuracy

OWN_RATINGS, EXTERNAL, ZERO_SHOT = "own_ratings", "yelp_imdb", "zero_shot"
MODEL_DESCRIPTIONS = {
    OWN_RATINGS: "(a) logistic regression on the shop's own ratings",
    EXTERNAL: "(b) logistic regression on yelp + imdb labelled sentences",
    ZERO_SHOT: "(c) zero-shot: similarity to anchor sentences",
}

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

AMAZON = "amazon_cells_labelled.txt"
EXTERNAL_TRAINING = ("yelp_labelled.txt", "imdb_labelled.txt")

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

EVALUATION = TableSchema(
    name="review_insights_evaluation",
    key="model",
    columns=(
        Column("model", pa.string(), False, "own_ratings | yelp_imdb | zero_shot"),
        Column("dataset", pa.string(), False, "amazon | shop_held_out_<split> | shop_held_out_<split>_unseen_texts"),
        Column("accuracy", pa.float64(), True, "binary accuracy (score >= 0.5 = positive); null = not evaluated"),
        Column("n", pa.int64(), False, "texts evaluated"),
        Column("chosen", pa.bool_(), False, "the model that scored the shop's reviews"),
        Column("note", pa.string(), True, "why a figure is missing, what a split means"),
    ),
)


def sentiment_datasets_dir() -> Path:
    """`../shared/datasets/sentiment_en` beside the checkout, or `ECOMARKET_SENTIMENT_DATA`."""
    default = REPO_ROOT.parent / "shared" / "datasets" / "sentiment_en"
    return Path(os.environ.get("ECOMARKET_SENTIMENT_DATA", default)).expanduser()


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


@dataclass(frozen=True)
class HeldOut:
    """Accuracy of the own-ratings recipe on shop reviews it was not trained on."""

    split: str  # "time" or "stratified"
    train_reviews: int
    test_reviews: int
    accuracy: float
    unseen_test_reviews: int  # test reviews whose exact text does not occur in the training part
    accuracy_unseen: float  # NaN when there are none
    test_from: str  # first review_time in the test part ("" for a stratified split)


def held_out_accuracy(reviews: pd.DataFrame, embed: Embed, test_share: float = TEST_SHARE,
                      min_per_class: int = MIN_PER_CLASS) -> HeldOut | None:
    """Train on the earliest reviews, test on the latest `test_share` (4-5 vs 1-2 stars).

    Falls back to a stratified random split (seeded) when the time split leaves
    a class short in training or absent from the test part; None when even
    that is impossible.
    """
    labels = rating_labels(reviews["rating"].to_numpy())
    rated = reviews.reset_index(drop=True).assign(label=labels)
    rated = rated[rated["label"].notna()].sort_values("review_time", kind="stable")
    if len(rated) < 2:
        return None
    cut = int(round(len(rated) * (1 - test_share)))
    train, test, split = rated.iloc[:cut], rated.iloc[cut:], "time"
    if not _splittable(train, test, min_per_class):
        from sklearn.model_selection import train_test_split

        counts = rated["label"].value_counts()
        if len(counts) < 2 or counts.min() < 2:
            return None
        train, test = train_test_split(rated, test_size=test_share, stratify=rated["label"], random_state=0)
        split = "stratified"
        if not _splittable(train, test, min_per_class):
            return None
    model = train_classifier(train["text"].tolist(), train["label"].astype(int).to_numpy(), embed, OWN_RATINGS)
    scores = model.score_vectors(embed(test["text"].tolist()))
    truth = test["label"].astype(int).to_numpy()
    unseen = ~test["text"].isin(set(train["text"])).to_numpy()
    return HeldOut(
        split=split, train_reviews=len(train), test_reviews=len(test), accuracy=binary_accuracy(scores, truth),
        unseen_test_reviews=int(unseen.sum()), accuracy_unseen=binary_accuracy(scores[unseen], truth[unseen]),
        test_from=str(test["review_time"].min()) if split == "time" else "",
    )


def _splittable(train: pd.DataFrame, test: pd.DataFrame, min_per_class: int) -> bool:
    train_counts = train["label"].value_counts()
    return (len(train_counts) == 2 and train_counts.min() >= min_per_class and test["label"].nunique() == 2)


def load_labelled_sentences(path: Path) -> pd.DataFrame:
    """A UCI 'sentiment labelled sentences' file: `sentence<TAB>label` per line -> (text, label).

    Lines are split on newline only: imdb_labelled.txt contains U+0085 (NEL)
    inside sentences, which `str.splitlines` would treat as a line break.
    """
    rows = []
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        text, label = line.rsplit("\t", 1)
        rows.append((text.strip(), int(label)))
    return pd.DataFrame(rows, columns=["text", "label"])


def external_benchmark(embed: Embed, datasets_dir: Path | None = None, own: SentimentModel | None = None,
                       own_note: str = "", chosen: str | None = None) -> pd.DataFrame:
    """Accuracy on the Amazon sentences of (a) `own`, (b) a yelp + imdb model, (c) zero-shot.

    One row per model: model, description, trained_on, amazon_accuracy (NaN when
    not evaluated), amazon_sentences, chosen, note. Missing files are reported
    in `note` ("dataset not found: ..."), never raised.
    """
    folder = Path(datasets_dir) if datasets_dir is not None else sentiment_datasets_dir()
    amazon_path = folder / AMAZON
    amazon = load_labelled_sentences(amazon_path) if amazon_path.exists() else None
    rows = []

    def row(kind: str, model: SentimentModel | None, note: str) -> None:
        accuracy = float("nan")
        if model is not None and amazon is not None:
            accuracy = binary_accuracy(model.score(amazon["text"])[0], amazon["label"])
        elif amazon is None:
            note = "; ".join(n for n in (f"dataset not found: {amazon_path}", note) if n)
        rows.append({"model": kind, "description": MODEL_DESCRIPTIONS[kind],
                     "trained_on": model.trained_on if model is not None else 0,
                     "amazon_accuracy": accuracy, "amazon_sentences": len(amazon) if amazon is not None else 0,
                     "chosen": kind == chosen, "note": note})

    row(OWN_RATINGS, own, "" if own is not None else (own_note or "not trained"))
    external_files = [folder / name for name in EXTERNAL_TRAINING]
    missing = [str(p) for p in external_files if not p.exists()]
    external = None
    if not missing and amazon is not None:
        training = pd.concat([load_labelled_sentences(p) for p in external_files], ignore_index=True)
        external = train_classifier(training["text"].tolist(), training["label"].to_numpy(), embed, EXTERNAL)
    row(EXTERNAL, external, f"training data not found: {', '.join(missing)}" if missing else "")
    row(ZERO_SHOT, zero_shot(embed) if amazon is not None else None, "")
    return pd.DataFrame(rows)


def evaluation_table(benchmark: pd.DataFrame, held_out: HeldOut | None) -> pd.DataFrame:
    """Every accuracy figure in one table (EVALUATION schema): Amazon per model, then the shop held-out split."""
    rows = benchmark.rename(columns={"amazon_accuracy": "accuracy", "amazon_sentences": "n"}).assign(dataset="amazon")
    if held_out is not None:
        shop = pd.DataFrame([
            {"model": OWN_RATINGS, "dataset": f"shop_held_out_{held_out.split}", "accuracy": held_out.accuracy,
             "n": held_out.test_reviews, "chosen": True,
             "note": f"trained on {held_out.train_reviews} earlier rated reviews"},
            {"model": OWN_RATINGS, "dataset": f"shop_held_out_{held_out.split}_unseen_texts",
             "accuracy": held_out.accuracy_unseen, "n": held_out.unseen_test_reviews, "chosen": True,
             "note": "test reviews whose exact text never occurs in the training part"},
        ])
        rows = pd.concat([rows, shop], ignore_index=True)
    rows["accuracy"] = rows["accuracy"].astype(float)
    rows["n"] = rows["n"].astype("int64")
    rows["chosen"] = rows["chosen"].astype(bool)
    return rows[EVALUATION.names]


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


def check_insights(reviews: pd.DataFrame, scored: pd.DataFrame, products: pd.DataFrame):
    """Every stored review scored exactly once, scores finite in [0, 1], labels valid, product counts add up."""
    from ecomarket_assets.text.embeddings import CheckOutcome

    ids = set(reviews["review_id"])
    scored_ids = scored["review_id"]
    score = pd.to_numeric(scored["sentiment_score"], errors="coerce")
    out_of_range = int((~score.between(0.0, 1.0)).sum())  # NaN counts as out of range
    bad_labels = int((~scored["sentiment_label"].isin(LABELS)).sum())
    unscored = len(ids - set(scored_ids))
    unknown = len(set(scored_ids) - ids)
    duplicated = int(scored_ids.duplicated().sum())
    counted = int(products["reviews"].sum()) if len(products) else 0
    passed = not (out_of_range or bad_labels or unscored or unknown or duplicated) and counted == len(scored)
    return CheckOutcome(passed, {
        "reviews": len(ids), "scored": len(scored), "unscored_reviews": unscored, "unknown_reviews": unknown,
        "duplicated_reviews": duplicated, "scores_outside_0_1": out_of_range, "invalid_labels": bad_labels,
        "reviews_counted_in_products": counted,
    })


def score_histogram(scored: pd.DataFrame):
    """Matplotlib figure: distribution of sentiment scores, one panel per star rating."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratings = scored["rating"].astype("Float64")
    colours = {1: "tab:red", 2: "tab:red", 3: "tab:gray", 4: "tab:green", 5: "tab:green"}
    groups = [(f"{int(r)} stars", scored.loc[ratings == r, "sentiment_score"], colours.get(int(r), "tab:gray"))
              for r in sorted(ratings.dropna().unique())]
    if ratings.isna().any():
        groups.append(("no rating", scored.loc[ratings.isna(), "sentiment_score"], "tab:blue"))
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(2.2 * max(len(groups), 1) + 1, 2.6), sharex=True, squeeze=False)
    bins = np.linspace(0, 1, 21)
    for ax, (name, values, colour) in zip(axes[0], groups, strict=False):
        ax.hist(values, bins=bins, color=colour)
        ax.axvspan(NEGATIVE_MAX, POSITIVE_MIN, color="0.9", zorder=0)
        ax.set_title(f"{name} (n={len(values)})", fontsize=9)
        ax.set_xlabel("sentiment score", fontsize=8)
    axes[0][0].set_ylabel("reviews")
    fig.suptitle("Sentiment score by star rating (grey band = neutral)", fontsize=10)
    fig.tight_layout()
    return fig


def check_amazon_accuracy(evaluation: pd.DataFrame, threshold: float):
    """Passes when the chosen model's Amazon accuracy is >= threshold, or when it could not be evaluated (noted)."""
    from ecomarket_assets.text.embeddings import CheckOutcome

    chosen = evaluation[(evaluation["dataset"] == "amazon") & evaluation["chosen"].astype(bool)]
    if chosen.empty or chosen["accuracy"].isna().all():
        note = "no reviews scored" if chosen.empty else (chosen["note"].iloc[0] or "not evaluated")
        return CheckOutcome(True, {"evaluated": False, "note": note, "threshold": threshold})
    row = chosen.iloc[0]
    accuracy = float(row["accuracy"])
    return CheckOutcome(accuracy >= threshold, {
        "evaluated": True, "model": str(row["model"]), "amazon_accuracy": round(accuracy, 4),
        "amazon_sentences": int(row["n"]), "threshold": threshold,
    })
