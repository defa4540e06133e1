"""Review sentiment: one logistic regression on sentence embeddings and TF-IDF n-grams, or a general model.

* `train_from_ratings`: the shop's own stars are the labels (4-5 positive,
  1-2 negative; 3 stars are ambiguous and left out of training). The model
  (`train_combined`) reads MiniLM embeddings and word 1-2 / char 2-5 gram
  TF-IDF together: the embeddings know paraphrases, the n-grams know the
  shop's own words. The regularisation C, the weight of the embeddings beside
  the n-grams and the decision threshold are chosen by cross-validation on the
  training reviews only. Rivals on the same ratings: `train_tfidf` (TF-IDF +
  logistic regression, the classic baseline) and `train_classifier`
  (embeddings + logistic regression).
* Without enough ratings (`MIN_PER_CLASS` of each class), `choose_model` picks
  among general models (logistic regression on other labelled corpora,
  `zero_shot` anchors) the one with the best balanced accuracy on a held-out
  labelled set; zero-shot is no longer the default.
* `zero_shot`: a text's score is the difference of its cosine similarity to
  the averaged positive and the averaged negative anchor sentences, squashed.
* `SentimentModel.score(texts) -> (score in [0, 1], label)`, label by
  `label_scores` (positive >= 0.6, negative <= 0.4, neutral between); a score
  >= 0.5 is the model's positive decision (a chosen threshold is mapped to 0.5).

Quality is reported as balanced accuracy (the mean of the recall of each
class), because shop reviews are mostly positive: plain accuracy rewards a
model that calls everything positive. How well the models do on text they
never saw is measured in `sentiment_benchmark`; the checks on the stored
outputs are in `text.checks`, the score figure in `text.plots`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
# The combined model's search, by CV on the training reviews: 3 x 3 settings x 5 folds, about 5 s on 800 sentences.
C_GRID = (1.0, 3.0, 10.0)
EMBEDDING_WEIGHTS = (0.5, 1.0, 2.0)  # the unit-norm embedding beside the unit-norm word and char TF-IDF rows
THRESHOLDS = tuple(round(0.35 + 0.025 * i, 3) for i in range(13))  # 0.35 .. 0.65: a nudge, not a new model
CV_FOLDS = 5
CV_MAX_TEXTS = 4_000  # the settings are searched on a seeded sample of this many; the final fit sees every text
SEED = 0

OWN_RATINGS, EXTERNAL, ZERO_SHOT = "own_ratings", "yelp_imdb", "zero_shot"
TFIDF_LR, EMBEDDINGS_LR = "tfidf_lr", "embeddings_lr"  # rivals of OWN_RATINGS on the same ratings

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


def balanced_accuracy(scores: np.ndarray, labels: Sequence[int] | np.ndarray, threshold: float = 0.5) -> float:
    """Mean over the classes present of the share of that class decided right (score >= threshold = positive).

    0.5 for a model that calls everything positive, however few negatives there are; NaN for no texts.
    """
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return float("nan")
    decided = (np.asarray(scores, dtype=float) >= threshold).astype(int)
    return float(np.mean([(decided[labels == c] == c).mean() for c in np.unique(labels)]))


@dataclass(frozen=True)
class Labelled:
    """Texts with 0/1 labels that a choice is made on (never the texts being scored)."""

    name: str
    texts: list[str]
    labels: np.ndarray


# --------------------------------------------------------------------------- models


@dataclass
class SentimentModel:
    """Scores texts in [0, 1]. `kind` is one of own_ratings, tfidf_lr, embeddings_lr, yelp_imdb, zero_shot.

    A classifier reads `features`: the fitted TF-IDF `vectorizer`'s columns (if any) beside the embeddings times
    `embedding_weight` (0 = no embeddings, and no encoding). Its probability is shifted so that the chosen
    `threshold` lands on 0.5: scores >= 0.5 are the positive decisions, whatever the threshold.
    """

    kind: str
    embed: Embed
    classifier: object | None = None  # a fitted LogisticRegression
    anchors: tuple[np.ndarray, np.ndarray] | None = None  # unit (positive, negative) centroids
    temperature: float = ZERO_SHOT_TEMPERATURE
    trained_on: int = 0
    vectorizer: object | None = None  # a fitted TF-IDF (FeatureUnion) of the texts
    embedding_weight: float = 1.0
    threshold: float = 0.5
    settings: dict[str, float] = field(default_factory=dict)  # what cross-validation chose, and its figure

    @property
    def reads_texts(self) -> bool:
        return self.vectorizer is not None

    @property
    def reads_embeddings(self) -> bool:
        return self.classifier is None or self.embedding_weight > 0

    def features(self, vectors: np.ndarray | None, texts: Sequence[str] | None = None):
        """The classifier's input: dense embeddings alone, or sparse n-grams beside the weighted embeddings."""
        return _features(self.vectorizer, texts, vectors, self.embedding_weight)

    def score_vectors(self, vectors: np.ndarray | None, texts: Sequence[str] | None = None) -> np.ndarray:
        """Scores from precomputed embeddings (`vectors`); a model that reads n-grams also needs the `texts`."""
        n = len(texts) if vectors is None else len(vectors)
        if n == 0:
            return np.empty(0)
        if self.classifier is not None:
            if self.reads_texts and texts is None:
                raise ValueError(f"the {self.kind} model reads the texts too: pass them")
            probability = self.classifier.predict_proba(self.features(vectors, texts))[:, 1].astype(float)
            return _shift(probability, self.threshold)
        positive, negative = self.anchors
        gap = vectors @ positive - vectors @ negative
        return 1.0 / (1.0 + np.exp(-gap.astype(float) / self.temperature))

    def score(self, texts: Sequence[str] | pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(scores in [0, 1], labels positive / neutral / negative) for each text."""
        texts = list(texts)
        vectors = self.embed(texts) if self.reads_embeddings else None
        scores = self.score_vectors(vectors, texts)
        return scores, label_scores(scores)


def _shift(probability: np.ndarray, threshold: float) -> np.ndarray:
    """Move `threshold` to 0.5 on the logit scale (monotone: the order of the scores is kept)."""
    if threshold == 0.5:
        return probability
    p = np.clip(probability, 1e-12, 1 - 1e-12)
    logit = np.log(p / (1 - p)) - np.log(threshold / (1 - threshold))
    return 1.0 / (1.0 + np.exp(-logit))


def _features(vectorizer, texts: Sequence[str] | None, vectors: np.ndarray | None, weight: float):
    if vectorizer is None:
        return vectors
    from scipy import sparse

    grams = vectorizer.transform(list(texts))
    return grams if not weight else sparse.hstack([grams, sparse.csr_matrix(vectors * weight)]).tocsr()


class NotEnoughRatings(ValueError):
    """Fewer rated reviews of a class than a classifier needs."""


def _logistic(c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", max_iter=3000)


def _one_thread(train: Callable) -> Callable:
    """Fit with one BLAS / OpenMP thread: the fits are small, and torch or LightGBM may hold the other core."""
    from functools import wraps

    @wraps(train)
    def wrapped(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return train(*args, **kwargs)

    return wrapped


def word_tfidf():
    """Word 1-2 grams, sublinear tf: the classic baseline's features."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)


def text_features():
    """Word 1-2 grams and char 2-5 grams (within words: spelling variants, negations like "n't")."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    return make_union(word_tfidf(), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))


@_one_thread
def train_classifier(texts: Sequence[str], labels: Sequence[int], embed: Embed, kind: str) -> SentimentModel:
    """Logistic regression on the embeddings of `texts` (labels 1 positive, 0 negative), classes balanced."""
    labels = np.asarray(labels, dtype=int)
    classifier = _logistic(C).fit(embed(list(texts)), labels)
    return SentimentModel(kind=kind, embed=embed, classifier=classifier, trained_on=len(labels))


@_one_thread
def train_tfidf(texts: Sequence[str], labels: Sequence[int], embed: Embed, kind: str = TFIDF_LR) -> SentimentModel:
    """The rival to beat: TF-IDF word 1-2 grams + logistic regression (C = 1, classes balanced), no embeddings."""
    labels = np.asarray(labels, dtype=int)
    vectorizer = word_tfidf().fit(list(texts))
    classifier = _logistic(1.0).fit(vectorizer.transform(list(texts)), labels)
    return SentimentModel(kind=kind, embed=embed, classifier=classifier, trained_on=len(labels),
                          vectorizer=vectorizer, embedding_weight=0.0)


@_one_thread
def train_combined(texts: Sequence[str], labels: Sequence[int], embed: Embed, kind: str = OWN_RATINGS,
                   folds: int = CV_FOLDS) -> SentimentModel:
    """Embeddings and word + char TF-IDF in one balanced logistic regression; C, the embeddings' weight and the
    threshold chosen on out-of-fold predictions of the training texts (stratified `folds`-fold CV)."""
    from sklearn.model_selection import StratifiedKFold

    texts, labels = list(texts), np.asarray(labels, dtype=int)
    vectors = np.asarray(embed(texts), dtype=float)
    grid = [(c, w) for c in C_GRID for w in EMBEDDING_WEIGHTS]
    search = np.arange(len(labels))
    if len(search) > CV_MAX_TEXTS:  # 9 settings x 5 folds on 25,000 reviews would take minutes, not seconds
        search = np.sort(np.random.default_rng(SEED).choice(search, CV_MAX_TEXTS, replace=False))
    cv_labels = labels[search]
    folds = max(2, min(folds, int(np.bincount(cv_labels, minlength=2).min())))
    out_of_fold = {g: np.zeros(len(search)) for g in grid}
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=SEED).split(search, cv_labels):
        train, test = search[train], search[test]
        vectorizer = text_features().fit([texts[i] for i in train])
        for c, w in grid:
            x_train = _features(vectorizer, [texts[i] for i in train], vectors[train], w)
            x_test = _features(vectorizer, [texts[i] for i in test], vectors[test], w)
            position = np.searchsorted(search, test)
            out_of_fold[(c, w)][position] = _logistic(c).fit(x_train, labels[train]).predict_proba(x_test)[:, 1]
    cv = {g: balanced_accuracy(p, cv_labels) for g, p in out_of_fold.items()}
    c, w = max(grid, key=lambda g: cv[g])  # ties: the first, i.e. the stronger regularisation
    by_threshold = {t: balanced_accuracy(out_of_fold[(c, w)], cv_labels, t) for t in THRESHOLDS}
    threshold = max(THRESHOLDS, key=lambda t: (by_threshold[t], -abs(t - 0.5)))  # ties: nearest to 0.5
    vectorizer = text_features().fit(texts)
    classifier = _logistic(c).fit(_features(vectorizer, texts, vectors, w), labels)
    return SentimentModel(kind=kind, embed=embed, classifier=classifier, trained_on=len(labels),
                          vectorizer=vectorizer, embedding_weight=w, threshold=threshold,
                          settings={"C": c, "embedding_weight": w, "threshold": threshold, "cv_folds": folds,
                                    "cv_texts": len(search),
                                    "cv_balanced_accuracy": round(by_threshold[threshold], 4)})


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
    return train_combined(texts, labels[keep].astype(int).to_numpy(), embed, OWN_RATINGS)


def zero_shot(embed: Embed, positive: Sequence[str] = POSITIVE_ANCHORS, negative: Sequence[str] = NEGATIVE_ANCHORS,
              temperature: float = ZERO_SHOT_TEMPERATURE) -> SentimentModel:
    """No labels: cosine similarity to the averaged positive minus the averaged negative anchors."""
    def centroid(sentences: Sequence[str]) -> np.ndarray:
        mean = np.asarray(embed(list(sentences)), dtype=float).mean(axis=0)
        return mean / np.linalg.norm(mean)

    return SentimentModel(kind=ZERO_SHOT, embed=embed, anchors=(centroid(positive), centroid(negative)),
                          temperature=temperature)


def held_out_figures(candidates: Sequence[SentimentModel], held_out: Labelled) -> dict[str, float]:
    """Balanced accuracy of each candidate on `held_out`, by kind (each scores through its own `embed`)."""
    return {m.kind: balanced_accuracy(m.score(held_out.texts)[0], held_out.labels) for m in candidates}


def pick_general(candidates: Sequence[SentimentModel], figures: dict[str, float]) -> SentimentModel:
    """The candidate with the best figure; a missing or NaN figure never wins, ties go to the earlier one."""
    def figure(model: SentimentModel) -> float:
        value = figures.get(model.kind, float("nan"))
        return -np.inf if pd.isna(value) else value

    return max(candidates, key=figure)


def choose_model(texts: Sequence[str] | pd.Series, ratings: Sequence | pd.Series, embed: Embed,
                 general: Sequence[SentimentModel] = (), held_out: Labelled | None = None,
                 min_per_class: int = MIN_PER_CLASS) -> tuple[SentimentModel, str]:
    """The shop's own-ratings model when it has enough rated reviews of both classes; else the general model
    (`general`, e.g. trained on other corpora, and zero-shot) with the best balanced accuracy on `held_out`.

    Returns the model, scoring through `embed` (the shop's cache), and why it was chosen, with the figures.
    Without a held-out set the first of `general` is taken (zero-shot when `general` is empty).
    """
    positive, negative = class_counts(ratings)
    rated = int(pd.to_numeric(pd.Series(ratings), errors="coerce").notna().sum())
    if min(positive, negative) >= min_per_class:
        model = train_from_ratings(texts, ratings, embed, min_per_class)
        reason = (f"own ratings: {positive} positive (4-5 stars) and {negative} negative (1-2 stars) reviews, "
                  f">= {min_per_class} of each; {rated - positive - negative} three-star reviews left out of training; "
                  + ", ".join(f"{k} {v:g}" for k, v in model.settings.items()) + " (by cross-validation)")
        return model, reason
    candidates = list(general) or [zero_shot(embed)]
    short = f"only {positive} positive and {negative} negative rated reviews (own ratings need >= {min_per_class} of each)"
    if held_out is None or len(candidates) == 1:
        chosen = candidates[0]
        how = "no held-out set to choose on" if len(candidates) > 1 else "the only general model"
    else:
        figures = held_out_figures(candidates, held_out)
        chosen = pick_general(candidates, figures)
        how = (f"best balanced accuracy on {held_out.name} ({len(held_out.labels)} labelled texts): "
               + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    return replace(chosen, embed=embed), f"{chosen.kind.replace('_', '-')}: {short}; {how}"


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
