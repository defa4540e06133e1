"""How well the sentiment models do on text they never saw, against an external benchmark.

Evaluation is honest: accuracy is measured on text the model never saw. The
shop model gets a time split (train on the earliest 80 % of rated reviews,
test on the latest 20 %), also reported on test texts that never occur in the
training part (simulated reviews reuse templates). Every model is also scored
on the UCI Amazon product-review sentences, which no model trains on; the
yelp + imdb files of the same collection train a reference model.

The labelled-sentence files live outside the repository; everything here
takes their folder as an argument. `sentiment_datasets_dir` is the one place
that decides where that folder is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ecomarket_assets.schemas import Column, TableSchema
from ecomarket_assets.storage import REPO_ROOT
from ecomarket_assets.text.sentiment import (
    EXTERNAL,
    MIN_PER_CLASS,
    OWN_RATINGS,
    ZERO_SHOT,
    Embed,
    SentimentModel,
    binary_accuracy,
    rating_labels,
    train_classifier,
    zero_shot,
)

TEST_SHARE = 0.2
AMAZON = "amazon_cells_labelled.txt"
EXTERNAL_TRAINING = ("yelp_labelled.txt", "imdb_labelled.txt")

MODEL_DESCRIPTIONS = {
    OWN_RATINGS: "(a) logistic regression on the shop's own ratings",
    EXTERNAL: "(b) logistic regression on yelp + imdb labelled sentences",
    ZERO_SHOT: "(c) zero-shot: similarity to anchor sentences",
}

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


def sentiment_datasets_dir(configured: str = "") -> Path:
    """`configured` (`embedding_model.sentiment_data`, ECOMARKET_SENTIMENT_DATA), else
    `../shared/datasets/sentiment_en` beside the checkout."""
    default = REPO_ROOT.parent / "shared" / "datasets" / "sentiment_en"
    return Path(configured or default).expanduser()


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


def external_benchmark(embed: Embed, datasets_dir: Path, own: SentimentModel | None = None,
                       own_note: str = "", chosen: str | None = None) -> pd.DataFrame:
    """Accuracy on the Amazon sentences of (a) `own`, (b) a yelp + imdb model, (c) zero-shot.

    `embed` encodes the benchmark's sentences; they are the same for every shop, so it may go through a cache
    shared by every shop on the machine (`reference_cache_path`) while `own` was trained through the shop's.

    One row per model: model, description, trained_on, amazon_accuracy (NaN when
    not evaluated), amazon_sentences, chosen, note. Missing files are reported
    in `note` ("dataset not found: ..."), never raised.
    """
    folder = Path(datasets_dir)
    amazon_path = folder / AMAZON
    amazon = load_labelled_sentences(amazon_path) if amazon_path.exists() else None
    rows = []

    amazon_vectors = embed(amazon["text"].tolist()) if amazon is not None else None

    def row(kind: str, model: SentimentModel | None, note: str) -> None:
        accuracy = float("nan")
        if model is not None and amazon is not None:  # same encoder: `embed`'s vectors are the model's own
            accuracy = binary_accuracy(model.score_vectors(amazon_vectors), amazon["label"])
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
