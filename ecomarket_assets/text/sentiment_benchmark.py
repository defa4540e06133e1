"""How well the sentiment models do on text they never saw, against an external benchmark.

Evaluation is honest: balanced accuracy (and plain accuracy beside it) is
measured on text the model never saw. The shop model gets a time split (train
on the earliest 80 % of rated reviews, test on the latest 20 %), also reported
on test texts that never occur in the training part (simulated reviews reuse
templates), beside its rivals trained on the same reviews (TF-IDF + logistic
regression, embeddings + logistic regression). Every model is also scored on
the UCI Amazon product-review sentences, which no model trains on; the yelp +
imdb files of the same collection train the general model, and Amazon is the
held-out set a shop without ratings chooses its general model on.

`separate_shops` treats each UCI file (Amazon, Yelp, IMDb) as a shop of its
own: file order split, every model trained on the first 80 %, scored on the
last 20 %; the general models never see the shop's corpus.

The labelled-sentence files live outside the repository; everything here
takes their folder as an argument. `sentiment_datasets_dir` is the one place
that decides where that folder is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ecomarket_assets.schemas import Column, TableSchema
from ecomarket_assets.storage import REPO_ROOT
from ecomarket_assets.text.sentiment import (
    EMBEDDINGS_LR,
    EXTERNAL,
    MIN_PER_CLASS,
    OWN_RATINGS,
    TFIDF_LR,
    ZERO_SHOT,
    Embed,
    Labelled,
    SentimentModel,
    balanced_accuracy,
    binary_accuracy,
    choose_model,
    rating_labels,
    train_classifier,
    train_combined,
    train_tfidf,
    zero_shot,
)

TEST_SHARE = 0.2
AMAZON = "amazon_cells_labelled.txt"
EXTERNAL_TRAINING = ("yelp_labelled.txt", "imdb_labelled.txt")
SHOP_FILES = {"amazon": AMAZON, "yelp": "yelp_labelled.txt", "imdb": "imdb_labelled.txt"}
GENERAL, CHOSEN = "general", "without_ratings_chosen"

MODEL_DESCRIPTIONS = {
    OWN_RATINGS: "(a) embeddings + word/char TF-IDF, logistic regression on the shop's own ratings",
    EXTERNAL: "(b) logistic regression on yelp + imdb labelled sentences",
    ZERO_SHOT: "(c) zero-shot: similarity to anchor sentences",
    TFIDF_LR: "rival: TF-IDF word 1-2 grams + logistic regression on the shop's own ratings",
    EMBEDDINGS_LR: "rival: embeddings + logistic regression on the shop's own ratings",
}

EVALUATION = TableSchema(
    name="review_insights_evaluation",
    key="model",
    columns=(
        Column("model", pa.string(), False, "own_ratings | yelp_imdb | zero_shot | tfidf_lr | embeddings_lr"),
        Column("dataset", pa.string(), False, "amazon | shop_held_out_<split> | shop_held_out_<split>_unseen_texts"),
        Column("balanced_accuracy", pa.float64(), True,
               "mean recall of the two classes (score >= 0.5 = positive); null = not evaluated"),
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
    """The own-ratings recipe and its rivals on shop reviews they were not trained on."""

    split: str  # "time" or "stratified"
    train_reviews: int
    test_reviews: int
    unseen_test_reviews: int  # test reviews whose exact text does not occur in the training part
    test_from: str  # first review_time in the test part ("" for a stratified split)
    figures: pd.DataFrame  # model, unseen (bool), balanced_accuracy, accuracy, n; NaN when there are no texts

    def figure(self, model: str = OWN_RATINGS, metric: str = "balanced_accuracy", unseen: bool = False) -> float:
        rows = self.figures[(self.figures["model"] == model) & (self.figures["unseen"] == unseen)]
        return float(rows[metric].iloc[0]) if len(rows) else float("nan")

    @property
    def balanced_accuracy(self) -> float:
        return self.figure()

    @property
    def accuracy(self) -> float:
        return self.figure(metric="accuracy")

    @property
    def balanced_accuracy_unseen(self) -> float:
        return self.figure(unseen=True)

    @property
    def accuracy_unseen(self) -> float:
        return self.figure(metric="accuracy", unseen=True)


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
    texts, labels = train["text"].tolist(), train["label"].astype(int).to_numpy()
    truth = test["label"].astype(int).to_numpy()
    unseen = ~test["text"].isin(set(train["text"])).to_numpy()
    rows = []
    for model in own_ratings_models(texts, labels, embed):
        scores, _ = model.score(test["text"].tolist())
        for subset, keep in ((False, np.ones(len(truth), dtype=bool)), (True, unseen)):
            rows.append({"model": model.kind, "unseen": subset, **_figures(scores[keep], truth[keep])})
    return HeldOut(
        split=split, train_reviews=len(train), test_reviews=len(test), unseen_test_reviews=int(unseen.sum()),
        test_from=str(test["review_time"].min()) if split == "time" else "", figures=pd.DataFrame(rows),
    )


def own_ratings_models(texts: list[str], labels: np.ndarray, embed: Embed) -> list[SentimentModel]:
    """The same ratings, three recipes: the chosen combined model first, then its two rivals."""
    return [train_combined(texts, labels, embed, OWN_RATINGS), train_tfidf(texts, labels, embed, TFIDF_LR),
            train_classifier(texts, labels, embed, EMBEDDINGS_LR)]


def _figures(scores: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"balanced_accuracy": balanced_accuracy(scores, truth), "accuracy": binary_accuracy(scores, truth),
            "n": len(truth)}


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


def amazon_sentences(datasets_dir: Path) -> Labelled | None:
    """The Amazon sentences as a held-out labelled set (no model trains on them); None when the file is missing."""
    path = Path(datasets_dir) / AMAZON
    if not path.exists():
        return None
    frame = load_labelled_sentences(path)
    return Labelled("the UCI Amazon sentences", frame["text"].tolist(), frame["label"].to_numpy())


def general_models(embed: Embed, datasets_dir: Path) -> list[SentimentModel]:
    """The candidates for a shop without enough ratings: the yelp + imdb model (when its files are there), then
    zero-shot. `embed` may be the machine-wide reference cache: every shop trains the same general model."""
    files = [Path(datasets_dir) / name for name in EXTERNAL_TRAINING]
    models = []
    if all(p.exists() for p in files):
        training = pd.concat([load_labelled_sentences(p) for p in files], ignore_index=True)
        models.append(train_classifier(training["text"].tolist(), training["label"].to_numpy(), embed, EXTERNAL))
    return [*models, zero_shot(embed)]


def external_benchmark(embed: Embed, datasets_dir: Path, own: SentimentModel | None = None,
                       own_note: str = "", chosen: str | None = None,
                       general: list[SentimentModel] | None = None) -> pd.DataFrame:
    """Balanced accuracy and accuracy on the Amazon sentences of (a) `own`, (b) a yelp + imdb model, (c) zero-shot.

    `embed` encodes the benchmark's sentences; they are the same for every shop, so it may go through a cache
    shared by every shop on the machine (`reference_cache_path`) while `own` was trained through the shop's.
    `general`: (b) and (c) when the caller has them already (`general_models`), else they are built here.

    One row per model: model, description, trained_on, amazon_balanced_accuracy and amazon_accuracy (NaN when
    not evaluated), amazon_sentences, chosen, note. Missing files are reported in `note` ("dataset not found:
    ..."), never raised.
    """
    folder = Path(datasets_dir)
    amazon_path = folder / AMAZON
    amazon = load_labelled_sentences(amazon_path) if amazon_path.exists() else None
    rows = []

    amazon_texts = amazon["text"].tolist() if amazon is not None else []
    amazon_vectors = embed(amazon_texts) if amazon is not None else None

    def row(kind: str, model: SentimentModel | None, note: str) -> None:
        figures = {"balanced_accuracy": float("nan"), "accuracy": float("nan")}
        if model is not None and amazon is not None:  # same encoder: `embed`'s vectors are the model's own
            figures = _figures(model.score_vectors(amazon_vectors, amazon_texts), amazon["label"].to_numpy())
        elif amazon is None:
            note = "; ".join(n for n in (f"dataset not found: {amazon_path}", note) if n)
        rows.append({"model": kind, "description": MODEL_DESCRIPTIONS[kind],
                     "trained_on": model.trained_on if model is not None else 0,
                     "amazon_balanced_accuracy": figures["balanced_accuracy"], "amazon_accuracy": figures["accuracy"],
                     "amazon_sentences": len(amazon) if amazon is not None else 0,
                     "chosen": kind == chosen, "note": note})

    row(OWN_RATINGS, own, "" if own is not None else (own_note or "not trained"))
    missing = [str(folder / name) for name in EXTERNAL_TRAINING if not (folder / name).exists()]
    by_kind = {m.kind: m for m in (general if general is not None else
                                   general_models(embed, folder) if amazon is not None else [])}
    row(EXTERNAL, by_kind.get(EXTERNAL), f"training data not found: {', '.join(missing)}" if missing else "")
    row(ZERO_SHOT, by_kind.get(ZERO_SHOT) if amazon is not None else None, "")
    return pd.DataFrame(rows)


def evaluation_table(benchmark: pd.DataFrame, held_out: HeldOut | None) -> pd.DataFrame:
    """Every figure in one table (EVALUATION schema): Amazon per model, then the shop held-out split per model
    (the chosen own-ratings model and its rivals on the same reviews)."""
    rows = benchmark.rename(columns={"amazon_balanced_accuracy": "balanced_accuracy", "amazon_accuracy": "accuracy",
                                     "amazon_sentences": "n"}).assign(dataset="amazon")
    if held_out is not None:
        notes = {False: f"trained on {held_out.train_reviews} earlier rated reviews",
                 True: "test reviews whose exact text never occurs in the training part"}
        shop = held_out.figures.assign(
            dataset=[f"shop_held_out_{held_out.split}" + ("_unseen_texts" if u else "") for u in held_out.figures["unseen"]],
            chosen=held_out.figures["model"] == OWN_RATINGS, note=held_out.figures["unseen"].map(notes))
        rows = pd.concat([rows, shop], ignore_index=True)
    rows["balanced_accuracy"] = rows["balanced_accuracy"].astype(float)
    rows["accuracy"] = rows["accuracy"].astype(float)
    rows["n"] = rows["n"].astype("int64")
    rows["chosen"] = rows["chosen"].astype(bool)
    return rows[EVALUATION.names]


# --------------------------------------------------------------------------- each UCI corpus as a shop


def separate_shops(embed: Embed, datasets_dir: Path, train_share: float = 1 - TEST_SHARE,
                   shops: dict[str, str] | None = None) -> pd.DataFrame:
    """Each corpus (`SHOP_FILES`: Amazon, Yelp, IMDb) as a shop of its own, split in file order: every model
    trains on the first `train_share` (80 %) and is scored on the rest (the files have no dates).

    With ratings: TF-IDF + LR, embeddings + LR and the combined own-ratings model on the shop's 80 %.
    Without ratings: the general model trained on the OTHER corpora only (their first 80 %), zero-shot, and the
    one `choose_model` picks by balanced accuracy on the other corpora's last 20 % (never the shop's texts).

    One row per shop and model: shop, setting, model, balanced_accuracy, accuracy, n (test texts), seconds
    (training and scoring), note. A shop whose file is missing is left out.
    """
    folder = Path(datasets_dir)
    corpora = {name: load_labelled_sentences(folder / file) for name, file in (shops or SHOP_FILES).items()
               if (folder / file).exists()}
    rows = [row for shop in corpora for row in _shop_rows(shop, corpora, embed, train_share)]
    return pd.DataFrame(rows, columns=["shop", "setting", "model", "balanced_accuracy", "accuracy", "n", "seconds",
                                       "note"])


def _shop_rows(shop: str, corpora: dict[str, pd.DataFrame], embed: Embed, train_share: float) -> list[dict]:
    train, test = _file_order_split(corpora[shop], train_share)
    fitted = []  # (setting, name, model, training seconds, note)
    for recipe in (train_tfidf, _train_embeddings, train_combined):
        start = time.perf_counter()
        model = recipe(train["text"].tolist(), train["label"].to_numpy(), embed)
        settings = ", ".join(f"{k} {v:g}" for k, v in model.settings.items())
        fitted.append(("own ratings", model.kind, model, time.perf_counter() - start, settings))

    others = [name for name in corpora if name != shop]
    parts = [_file_order_split(corpora[name], train_share) for name in others]
    general_train = pd.concat([p[0] for p in parts], ignore_index=True)
    general_test = pd.concat([p[1] for p in parts], ignore_index=True)
    start = time.perf_counter()
    general = train_classifier(general_train["text"].tolist(), general_train["label"].to_numpy(), embed, GENERAL)
    candidates = [general, zero_shot(embed)]
    held_out = Labelled(f"the last {1 - train_share:.0%} of {' + '.join(others)}", general_test["text"].tolist(),
                        general_test["label"].to_numpy())
    chosen, reason = choose_model(train["text"].tolist(), [None] * len(train), embed, candidates, held_out)
    seconds = time.perf_counter() - start
    fitted += [("without ratings", GENERAL, general, seconds, f"trained on the first {train_share:.0%} of "
                + " + ".join(others)),
               ("without ratings", ZERO_SHOT, candidates[1], 0.0, ""),
               ("without ratings", CHOSEN, chosen, seconds, f"{chosen.kind}: " + reason.split("; ", 1)[1])]

    rows, truth = [], test["label"].to_numpy()
    for setting, name, model, seconds, note in fitted:
        start = time.perf_counter()
        scores, _ = model.score(test["text"].tolist())
        rows.append({"shop": shop, "setting": setting, "model": name, **_figures(scores, truth),
                     "seconds": round(seconds + time.perf_counter() - start, 2), "note": note})
    return rows


def _file_order_split(frame: pd.DataFrame, train_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = int(round(len(frame) * train_share))
    return frame.iloc[:cut], frame.iloc[cut:]


def _train_embeddings(texts: list[str], labels: np.ndarray, embed: Embed) -> SentimentModel:
    return train_classifier(texts, labels, embed, EMBEDDINGS_LR)


def shops_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Balanced accuracy per model (rows) and shop (columns), with the mean over shops."""
    wide = table.pivot_table(index=["setting", "model"], columns="shop", values="balanced_accuracy", sort=False)
    return wide.assign(mean=wide.mean(axis=1)).reset_index()
