"""Plain text / NLP functions: cache, product texts, similarity metrics, sentiment, key phrases.

A tiny fake encoder stands in for the model where the model is not the point;
the last tests use the real all-MiniLM-L6-v2 (loaded once per process).
"""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ecomarket_assets.text import checks, plots
from ecomarket_assets.text import embeddings as emb
from ecomarket_assets.text import keywords as kw
from ecomarket_assets.text import sentiment as sent
from ecomarket_assets.text import sentiment_benchmark as bench


class FakeEncoder:
    """Bag of hashed words -> unit vector (dim 16); records every text it was asked to encode."""

    def __init__(self, dim: int = 16, model_id: str = "fake-1") -> None:
        self.dim, self.model_id = dim, model_id
        self.calls: list[list[str]] = []

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        out[:, 0] += 1e-3  # no zero vectors
        return out / np.linalg.norm(out, axis=1, keepdims=True)


# --------------------------------------------------------------------------- texts and cache


def test_product_text_joins_title_description_category_and_skips_missing_parts():
    catalog = pd.DataFrame({
        "product_id": ["P1", "P2"],
        "title": ["Oak Lamp", "WHITE HANGING HEART T-LIGHT HOLDER"],
        "description": ["A warm oak lamp. Dimmable.", None],
        "category": ["home decor", "candles & lighting"],
    })
    texts = emb.product_text(catalog)
    assert texts.tolist() == [
        "Oak Lamp. A warm oak lamp. Dimmable. Category: home decor.",
        "WHITE HANGING HEART T-LIGHT HOLDER. Category: candles & lighting.",
    ]


def test_text_hash_is_sha1_of_utf8():
    hashes = emb.text_hash(["café", "café", "cafe"])
    assert hashes[0] == hashlib.sha1("café".encode()).hexdigest() == hashes[1] != hashes[2]


def test_cache_encodes_each_distinct_text_once_across_calls(tmp_path):
    encoder, cache = FakeEncoder(), tmp_path / "cache" / "embeddings.parquet"
    first, stats1 = emb.embed_with_cache(["red lamp", "blue chair", "red lamp"], encoder, cache)
    assert encoder.encoded == ["red lamp", "blue chair"]  # duplicates within a call encoded once
    assert (stats1.texts, stats1.unique, stats1.cached, stats1.encoded) == (3, 2, 0, 2)
    assert stats1.per_second is not None and stats1.per_second > 0
    np.testing.assert_array_equal(first[0], first[2])

    second, stats2 = emb.embed_with_cache(["blue chair", "green rug", "red lamp"], encoder, cache)
    assert encoder.calls[-1] == ["green rug"] and len(encoder.calls) == 2
    assert (stats2.cached, stats2.encoded) == (2, 1)
    np.testing.assert_array_equal(second[0], first[1])  # same vector back from the cache, same order as asked
    np.testing.assert_allclose(second, FakeEncoder().encode(["blue chair", "green rug", "red lamp"]), atol=1e-7)

    third, stats3 = emb.embed_with_cache(["green rug"], encoder, cache)
    assert len(encoder.calls) == 2 and stats3.encoded == 0 and stats3.per_second is None
    table = pq.read_table(cache)
    assert table.column_names == ["text_hash", "vector"] and table.num_rows == 3
    assert table.schema.field("vector").type.list_size == 16


def test_cache_of_another_model_is_discarded_not_mixed(tmp_path):
    cache = tmp_path / "embeddings.parquet"
    emb.embed_with_cache(["red lamp"], FakeEncoder(model_id="a"), cache)
    other = FakeEncoder(model_id="b")
    _, stats = emb.embed_with_cache(["red lamp"], other, cache)
    assert other.encoded == ["red lamp"] and stats.cache_reset and stats.cached == 0


def test_empty_input_encodes_nothing(tmp_path):
    encoder = FakeEncoder()
    vectors, stats = emb.embed_with_cache([], encoder, tmp_path / "c.parquet")
    assert vectors.shape[0] == 0 and encoder.calls == [] and stats.encoded == 0


def test_cached_embedder_counts_distinct_texts_over_calls(tmp_path):
    embed = emb.CachedEmbedder(FakeEncoder(), tmp_path / "c.parquet")
    embed(["a b", "c d"])
    embed(["a b", "e f", "c d"])
    assert (embed.stats.unique, embed.stats.encoded, embed.stats.cached) == (3, 3, 0)
    later = emb.CachedEmbedder(FakeEncoder(), tmp_path / "c.parquet")
    later(["a b", "e f", "g h"])
    assert (later.stats.unique, later.stats.encoded, later.stats.cached) == (3, 1, 2)


def test_cached_embedder_remembers_vectors_within_a_run(tmp_path):
    encoder = FakeEncoder()
    embed = emb.CachedEmbedder(encoder, tmp_path / "c.parquet")
    first = embed(["a b", "c d"])
    (tmp_path / "c.parquet").unlink()  # the second call must not need the file
    np.testing.assert_array_equal(embed(["c d", "a b"]), first[::-1])
    assert len(encoder.calls) == 1 and embed.stats.texts == 4


def test_concurrent_appends_keep_every_vector(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    cache = tmp_path / "c.parquet"
    batches = [[f"text {i} {j}" for j in range(20)] for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda batch: emb.embed_with_cache(batch, FakeEncoder(), cache), batches))
    hashes, vectors = emb.read_cache(cache, "fake-1")
    assert len(hashes) == 120 and hashes.is_unique
    expected = FakeEncoder().encode(batches[3])
    np.testing.assert_array_equal(vectors[hashes.get_indexer(emb.text_hash(batches[3]))], expected)


def test_embeddings_table_roundtrip(tmp_path):
    vectors = FakeEncoder().encode(["x", "y"])
    path = tmp_path / "e.parquet"
    pq.write_table(emb.embeddings_table(["P1", "P2"], vectors, ["h1", "h2"]), path)
    ids, back = emb.read_embeddings(path)
    assert ids.columns.tolist() == ["product_id", "text_hash"] and back.dtype == np.float32
    np.testing.assert_array_equal(back, vectors)


# --------------------------------------------------------------------------- metrics and checks


def test_category_similarity_known_answer_and_brute_force():
    e1, e2 = np.eye(3)[0], np.eye(3)[1]
    within, across = emb.category_similarity(np.array([e1, e1, e2, e2]), ["a", "a", "b", "b"])
    assert within == pytest.approx(1.0) and across == pytest.approx(0.0)

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    categories = rng.choice(["x", "y", "z"], size=30)
    sims = vectors @ vectors.T
    same = categories[:, None] == categories[None, :]
    off_diagonal = ~np.eye(30, dtype=bool)
    within, across = emb.category_similarity(vectors, categories)
    assert within == pytest.approx(sims[same & off_diagonal].mean())
    assert across == pytest.approx(sims[~same].mean())
    assert np.isnan(emb.category_similarity(vectors, ["x"] * 30)[1])  # no pair across categories


def test_check_embeddings_catches_each_defect():
    vectors = FakeEncoder().encode(["a", "b", "c"])
    catalog = pd.Series(["P1", "P2", "P3"])
    assert emb.check_embeddings(pd.Series(["P1", "P2", "P3"]), vectors, catalog).passed
    duplicated = emb.check_embeddings(pd.Series(["P1", "P1", "P3"]), vectors, catalog)
    assert not duplicated.passed and duplicated.metadata["duplicated_ids"] == 1 and duplicated.metadata["missing_products"] == 1
    bad = vectors.copy()
    bad[0, 0] = np.nan
    bad[1] *= 2
    outcome = emb.check_embeddings(catalog, bad, catalog)
    assert not outcome.passed
    assert outcome.metadata["vectors_with_nan"] == 1 and outcome.metadata["vectors_not_unit_norm"] >= 1


# --------------------------------------------------------------------------- sentiment


def test_label_thresholds():
    labels = sent.label_scores([0.0, 0.4, 0.41, 0.5, 0.59, 0.6, 1.0])
    assert labels.tolist() == ["negative", "negative", "neutral", "neutral", "neutral", "positive", "positive"]


def test_rating_labels_leave_out_three_stars_and_unrated():
    labels = sent.rating_labels([1, 2, 3, 4, 5, None])
    assert labels.iloc[:2].tolist() == [0.0, 0.0] and labels.iloc[3:5].tolist() == [1.0, 1.0]
    assert labels.iloc[[2, 5]].isna().all()
    assert sent.class_counts([1, 2, 3, 4, 5, 5]) == (3, 2)


def _toy_embed(texts):
    """'good ...' points along +x, 'bad ...' along -x, other dimensions noise: linearly separable."""
    rng = np.random.default_rng(len(texts))
    out = rng.normal(scale=0.3, size=(len(texts), 8))
    out[:, 0] = [1.0 if t.startswith("good") else -1.0 for t in texts]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _toy_reviews(n_pos: int, n_neg: int, n_three: int = 10) -> pd.DataFrame:
    rows = ([(f"good thing {i}", 5 - i % 2) for i in range(n_pos)] + [(f"bad thing {i}", 1 + i % 2) for i in range(n_neg)]
            + [(f"meh thing {i}", 3) for i in range(n_three)])
    frame = pd.DataFrame(rows, columns=["text", "rating"]).sample(frac=1.0, random_state=1).reset_index(drop=True)
    return frame.assign(review_id=[f"R{i}" for i in range(len(frame))], product_id="P1",
                        review_time=pd.date_range("2025-01-01", periods=len(frame), freq="h", tz="UTC"))


def test_train_from_ratings_separates_separable_embeddings():
    reviews = _toy_reviews(60, 40)
    model = sent.train_from_ratings(reviews["text"], reviews["rating"], _toy_embed)
    assert model.kind == sent.OWN_RATINGS and model.trained_on == 100  # three-star reviews left out
    test = [f"good new {i}" for i in range(20)] + [f"bad new {i}" for i in range(20)]
    scores, labels = model.score(test)
    assert sent.binary_accuracy(scores, [1] * 20 + [0] * 20) == 1.0
    assert ((scores >= 0) & (scores <= 1)).all() and set(labels[:20]) == {"positive"}


def test_too_few_ratings_fall_back_to_zero_shot():
    reviews = _toy_reviews(60, 19)
    with pytest.raises(sent.NotEnoughRatings):
        sent.train_from_ratings(reviews["text"], reviews["rating"], _toy_embed)
    model, reason = sent.choose_model(reviews["text"], reviews["rating"], _toy_embed)
    assert model.kind == sent.ZERO_SHOT and reason.startswith("zero-shot") and "19 negative" in reason
    model, reason = sent.choose_model(reviews["text"], [None] * len(reviews), _toy_embed)
    assert model.kind == sent.ZERO_SHOT


def test_held_out_is_a_time_split_on_the_latest_reviews():
    reviews = _toy_reviews(100, 50)
    held_out = bench.held_out_accuracy(reviews, _toy_embed)
    assert held_out.split == "time" and held_out.test_reviews == 30 and held_out.train_reviews == 120
    rated = reviews[reviews["rating"] != 3].sort_values("review_time")
    assert pd.Timestamp(held_out.test_from) == rated["review_time"].iloc[120]
    assert held_out.accuracy == 1.0 and held_out.unseen_test_reviews == 30  # every toy text is unique
    assert held_out.balanced_accuracy == 1.0
    figures = held_out.figures.set_index(["model", "unseen"])
    assert set(figures.index.get_level_values("model")) == {sent.OWN_RATINGS, sent.TFIDF_LR, sent.EMBEDDINGS_LR}
    assert figures["n"].tolist() == [30] * 6
    rows = bench.evaluation_table(bench.external_benchmark(_toy_embed, Path("/nowhere")), held_out)
    shop = rows[rows["dataset"] == "shop_held_out_time"]
    assert shop["model"].tolist() == [sent.OWN_RATINGS, sent.TFIDF_LR, sent.EMBEDDINGS_LR]
    assert shop["chosen"].tolist() == [True, False, False] and rows.columns.tolist() == bench.EVALUATION.names


def test_balanced_accuracy_weighs_each_class_equally():
    labels = [1, 1, 1, 1, 0]
    everything_positive = np.full(5, 0.9)
    assert sent.binary_accuracy(everything_positive, labels) == 0.8
    assert sent.balanced_accuracy(everything_positive, labels) == 0.5  # the negative class is all wrong
    scores = np.array([0.9, 0.8, 0.3, 0.6, 0.2])  # positives 3 of 4 right, the negative right
    assert sent.balanced_accuracy(scores, labels) == pytest.approx((0.75 + 1.0) / 2)
    assert sent.balanced_accuracy(scores, labels, threshold=0.7) == pytest.approx((0.5 + 1.0) / 2)
    assert np.isnan(sent.balanced_accuracy([], []))
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(3)
    truth, random_scores = rng.integers(0, 2, 200), rng.random(200)
    assert sent.balanced_accuracy(random_scores, truth) == pytest.approx(
        balanced_accuracy_score(truth, random_scores >= 0.5))


def _word_sentences(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Sentiment carried by a few words among filler; the fake embedding below knows nothing about it."""
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(40)]
    good, bad = ["great", "love", "perfect"], ["awful", "broke", "refund"]
    labels = rng.integers(0, 2, n)
    texts = [" ".join([*rng.choice(filler, 4), rng.choice(good if y else bad), *rng.choice(filler, 3)]) for y in labels]
    return texts, labels


def _noise_embed(texts):
    rng = np.random.default_rng(len(texts))
    out = rng.normal(size=(len(texts), 8))
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_combined_model_searches_on_a_sample_of_a_large_shop_and_fits_on_every_text(monkeypatch):
    monkeypatch.setattr(sent, "CV_MAX_TEXTS", 50)
    texts, labels = _word_sentences(120, seed=3)
    model = sent.train_combined(texts, labels, _noise_embed)
    assert model.settings["cv_texts"] == 50 and model.trained_on == 120
    assert model.settings["cv_balanced_accuracy"] > 0.8
    test_texts, test_labels = _word_sentences(60, seed=4)
    assert sent.balanced_accuracy(model.score(test_texts)[0], test_labels, model.threshold) > 0.8


def test_combined_model_learns_from_words_when_embeddings_are_noise():
    texts, labels = _word_sentences(80, seed=1)
    model = sent.train_combined(texts, labels, _noise_embed)
    assert model.kind == sent.OWN_RATINGS and model.trained_on == 80 and model.reads_texts
    assert model.settings["C"] in sent.C_GRID and model.settings["embedding_weight"] in sent.EMBEDDING_WEIGHTS
    assert model.threshold in sent.THRESHOLDS and model.settings["cv_balanced_accuracy"] > 0.8
    test_texts, test_labels = _word_sentences(60, seed=2)
    scores, labels_out = model.score(test_texts)
    assert sent.balanced_accuracy(scores, test_labels) > 0.9  # chance is 0.5
    assert ((scores >= 0) & (scores <= 1)).all() and set(labels_out) <= set(sent.LABELS)
    with pytest.raises(ValueError, match="reads the texts"):
        model.score_vectors(_noise_embed(test_texts))


def test_chosen_threshold_is_moved_to_half():
    probability = np.array([0.1, 0.39, 0.4, 0.41, 0.9])
    shifted = sent._shift(probability, 0.4)
    assert shifted[2] == pytest.approx(0.5) and (np.diff(shifted) > 0).all()
    assert ((shifted >= 0.5) == (probability >= 0.4 - 1e-12)).all()
    np.testing.assert_array_equal(sent._shift(probability, 0.5), probability)


def test_tfidf_rival_reads_no_embeddings():
    texts, labels = _word_sentences(60, seed=4)

    def refuse(_texts):
        raise AssertionError("the TF-IDF rival must not encode")

    model = sent.train_tfidf(texts, labels, refuse)
    test_texts, test_labels = _word_sentences(40, seed=5)
    assert model.kind == sent.TFIDF_LR and sent.balanced_accuracy(model.score(test_texts)[0], test_labels) > 0.75


def test_without_ratings_the_general_model_with_the_better_held_out_figure_is_chosen():
    held_out = sent.Labelled("toy held-out", [f"good h {i}" for i in range(10)] + [f"bad h {i}" for i in range(10)],
                             np.array([1] * 10 + [0] * 10))
    external = sent.train_classifier(["good a", "good b", "bad a", "bad b"], [1, 1, 0, 0], _toy_embed, sent.EXTERNAL)
    zero = sent.zero_shot(_toy_embed, positive=["good a", "good b"], negative=["bad a", "bad b"])
    backwards = sent.zero_shot(_toy_embed, positive=["bad a", "bad b"], negative=["good a", "good b"])
    reviews = _toy_reviews(60, 19)  # too few negatives for own ratings

    def shop_embed(texts):
        return _toy_embed(texts)

    model, reason = sent.choose_model(reviews["text"], reviews["rating"], shop_embed, [backwards, external], held_out)
    assert model.kind == sent.EXTERNAL and model.embed is shop_embed  # scores through the shop's cache
    assert reason.startswith("yelp-imdb") and "zero_shot 0.000" in reason and "yelp_imdb 1.000" in reason
    # zero-shot is not the default, but wins when its held-out figure is better
    broken = sent.train_classifier(["good a", "good b", "bad a", "bad b"], [0, 0, 1, 1], _toy_embed, sent.EXTERNAL)
    model, reason = sent.choose_model(reviews["text"], reviews["rating"], shop_embed, [broken, zero], held_out)
    assert model.kind == sent.ZERO_SHOT and "yelp_imdb 0.000" in reason
    # no held-out set: the first candidate, said so
    model, reason = sent.choose_model(reviews["text"], reviews["rating"], shop_embed, [external, zero], None)
    assert model.kind == sent.EXTERNAL and "no held-out set" in reason
    assert sent.pick_general([zero, external], {sent.ZERO_SHOT: float("nan"), sent.EXTERNAL: 0.6}) is external


def _write_corpus(path, n: int, offset: int) -> None:
    lines = [f"{'good' if i % 2 else 'bad'} sentence {offset + i}\t{i % 2}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_separate_shops_scores_each_corpus_as_a_shop(tmp_path):
    for k, name in enumerate(bench.SHOP_FILES.values()):
        _write_corpus(tmp_path / name, 50, 100 * k)
    table = bench.separate_shops(_toy_embed, tmp_path)
    assert table.columns.tolist() == ["shop", "setting", "model", "balanced_accuracy", "accuracy", "n", "seconds", "note"]
    assert len(table) == 18 and table["n"].eq(10).all()  # the last 20 % of 50 sentences, per shop and model
    assert table.groupby("shop")["model"].apply(list).map(tuple).nunique() == 1
    assert set(table["model"]) == {sent.TFIDF_LR, sent.EMBEDDINGS_LR, sent.OWN_RATINGS, bench.GENERAL,
                                   sent.ZERO_SHOT, bench.CHOSEN}
    general = table[table["model"] == bench.GENERAL].set_index("shop")["note"]
    assert general["amazon"] == "trained on the first 80% of yelp + imdb" and "yelp" not in general["yelp"]
    own = table[table["setting"] == "own ratings"]
    assert own["balanced_accuracy"].eq(1.0).all()  # separable toy sentences
    summary = bench.shops_summary(table)
    assert summary.columns.tolist() == ["setting", "model", "amazon", "yelp", "imdb", "mean"] and len(summary) == 6


def test_zero_shot_score_is_monotone_in_the_similarity_gap():
    model = sent.zero_shot(lambda texts: _toy_embed(texts), positive=["good a", "good b"], negative=["bad a", "bad b"])
    scores = model.score_vectors(np.array([[1.0] + [0] * 7, [0.0] * 8, [-1.0] + [0] * 7]))
    assert scores[0] > 0.99 and scores[1] == pytest.approx(0.5) and scores[2] < 0.01


def test_load_labelled_sentences_keeps_nel_inside_a_sentence(tmp_path):
    path = tmp_path / "imdb_like.txt"
    path.write_text("A slow\u0085 film.  \t0\nLoved it.\t1\n\n", encoding="utf-8")
    frame = bench.load_labelled_sentences(path)
    assert frame["label"].tolist() == [0, 1] and frame["text"].iloc[0] == "A slow\u0085 film."


def test_benchmark_reports_missing_dataset_instead_of_failing(tmp_path):
    table = bench.external_benchmark(_toy_embed, tmp_path / "nowhere", chosen=sent.ZERO_SHOT)
    assert table["model"].tolist() == [sent.OWN_RATINGS, sent.EXTERNAL, sent.ZERO_SHOT]
    assert table["amazon_accuracy"].isna().all() and table["note"].str.contains("dataset not found").all()
    evaluation = bench.evaluation_table(table, None)
    outcome = checks.check_amazon_accuracy(evaluation, 0.7)
    assert outcome.passed and outcome.metadata["evaluated"] is False


def test_benchmark_reads_the_folder_it_is_given(tmp_path):
    (tmp_path / bench.AMAZON).write_text("good phone\t1\nbad phone\t0\n", encoding="utf-8")
    for name in bench.EXTERNAL_TRAINING:
        (tmp_path / name).write_text("good x\t1\ngood y\t1\nbad x\t0\nbad y\t0\n", encoding="utf-8")
    table = bench.external_benchmark(_toy_embed, tmp_path, chosen=sent.EXTERNAL).set_index("model")
    assert table.loc[sent.EXTERNAL, "trained_on"] == 8 and table.loc[sent.EXTERNAL, "amazon_accuracy"] == 1.0
    assert table["amazon_sentences"].eq(2).all() and table.loc[sent.EXTERNAL, "chosen"]
    assert np.isnan(table.loc[sent.OWN_RATINGS, "amazon_accuracy"])  # no own model given


def test_datasets_dir_prefers_the_configured_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOMARKET_SENTIMENT_DATA", str(tmp_path / "from-env"))  # plain code never reads it
    assert bench.sentiment_datasets_dir(str(tmp_path / "configured")) == tmp_path / "configured"
    assert bench.sentiment_datasets_dir().parts[-3:] == ("shared", "datasets", "sentiment_en")


def test_check_amazon_accuracy_warns_below_threshold():
    evaluation = pd.DataFrame({"model": ["zero_shot", "yelp_imdb"], "dataset": ["amazon", "amazon"],
                               "balanced_accuracy": [0.65, 0.9], "accuracy": [0.72, 0.9],
                               "n": [1000, 1000], "chosen": [True, False], "note": ["", ""]})
    outcome = checks.check_amazon_accuracy(evaluation, 0.7)
    assert not outcome.passed and outcome.metadata["amazon_balanced_accuracy"] == 0.65  # plain accuracy would pass


def test_product_insights_and_contract():
    reviews = pd.DataFrame({"review_id": ["R1", "R2", "R3"], "product_id": ["P1", "P1", "P2"], "rating": [5, 1, 4],
                            "text": ["good a", "bad b", "good c"]})
    model = sent.train_classifier(["good x", "good y", "bad x", "bad y"], [1, 1, 0, 0], _toy_embed, sent.EXTERNAL)
    scored = sent.score_reviews(reviews, model)
    products = sent.product_insights(scored, {"P1": ["a", "b"]})
    assert products["product_id"].tolist() == ["P1", "P2"] and products["reviews"].tolist() == [2, 1]
    assert products["share_positive"].tolist() == [0.5, 1.0] and products["top_keywords"].tolist() == [["a", "b"], []]
    assert checks.check_insights(reviews, scored, products).passed
    broken = scored.copy()
    broken.loc[0, "sentiment_score"] = 1.5
    outcome = checks.check_insights(reviews, broken.iloc[:2], products)
    assert not outcome.passed
    assert outcome.metadata["scores_outside_0_1"] == 1 and outcome.metadata["unscored_reviews"] == 1


def test_score_histogram_has_a_panel_per_star_rating_and_one_for_unrated():
    scored = pd.DataFrame({"sentiment_score": [0.1, 0.9, 0.8, 0.5], "rating": [1, 5, 5, None]})
    figure = plots.score_histogram(scored)
    assert [ax.get_title() for ax in figure.axes] == ["1 stars (n=1)", "5 stars (n=2)", "no rating (n=1)"]


# --------------------------------------------------------------------------- key phrases


def test_candidate_phrases_are_1_to_3_grams_without_stop_words():
    phrases = kw.candidate_phrases(["The lamp is bright and the lamp is warm"])
    assert phrases[0] == "lamp"  # most frequent first
    assert {"bright", "lamp bright", "lamp bright lamp", "warm"} <= set(phrases)
    assert not {"the", "is", "and"} & set(phrases)
    assert kw.candidate_phrases(["the and of"]) == [] and kw.candidate_phrases([]) == []


def test_mmr_trades_a_near_duplicate_for_a_second_topic():
    document = np.array([1.0, 1.0, 0.0])  # a document about two topics
    candidates = ["lamp light", "lamp lights", "oak wood", "unrelated"]
    vectors = np.array([[1.0, 0.10, 0.0], [1.0, 0.12, 0.0], [0.10, 1.0, 0.0], [0.0, 0.0, 1.0]])
    relevance_only = kw.mmr(document, vectors, candidates, top_n=2, lambda_=1.0)
    assert [p for p, _ in relevance_only] == ["lamp lights", "lamp light"]
    diverse = kw.mmr(document, vectors, candidates, top_n=2, lambda_=0.6)
    assert [p for p, _ in diverse] == ["lamp lights", "oak wood"]
    assert len(kw.mmr(document, vectors, candidates, top_n=10)) == 4 and kw.mmr(document, vectors[:0], []) == []


def test_product_keywords_embed_each_distinct_phrase_once(tmp_path):
    encoder = FakeEncoder()
    embed = emb.CachedEmbedder(encoder, tmp_path / "c.parquet")
    reviews = pd.DataFrame({"product_id": ["P1", "P1", "P2", "P3"],
                            "text": ["Bright oak lamp", "Warm oak lamp", "Soft wool rug", "the and"]})
    phrases = kw.product_keywords(reviews, embed(reviews["text"]), embed, top_n=3)
    assert set(phrases) == {"P1", "P2", "P3"} and phrases["P3"] == []
    assert len(phrases["P1"]) == 3 and len(set(phrases["P1"])) == 3
    assert all(any(w in p for w in ("oak", "lamp", "bright", "warm")) for p in phrases["P1"])
    phrase_call = encoder.calls[-1]
    assert len(phrase_call) == len(set(phrase_call)) and "oak lamp" in phrase_call  # shared phrase embedded once
    assert len(encoder.encoded) == len(set(encoder.encoded))


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def real_encoder():
    from ecomarket_assets.text.model import EmbeddingModelResource

    return EmbeddingModelResource().encoder()


def test_real_encoder_is_loaded_once_and_returns_unit_vectors(real_encoder):
    from ecomarket_assets.text.model import EmbeddingModelResource

    assert EmbeddingModelResource().encoder() is real_encoder
    assert real_encoder.dimension == 384
    vectors = real_encoder.encode(["a red lamp", "a crimson lamp", "quarterly tax filing"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_model_loads_lazily_and_a_bad_path_fails_on_first_encode(tmp_path):
    from ecomarket_assets.text.model import EmbeddingModelResource

    encoder = EmbeddingModelResource(model_path=str(tmp_path)).encoder()  # nothing loaded yet
    assert not encoder.loaded and encoder.model_id.startswith(tmp_path.name)
    with pytest.raises(FileNotFoundError, match="no sentence-transformers model"):
        encoder.encode(["x"])


def test_zero_shot_with_the_real_model_on_obvious_sentences(real_encoder, tmp_path):
    model = sent.zero_shot(emb.CachedEmbedder(real_encoder, tmp_path / "c.parquet"))
    positive = ["Absolutely love it, works perfectly.", "Fantastic quality, highly recommend!",
                "Best purchase I have made this year."]
    negative = ["It broke after one day, total waste of money.", "Terrible, do not buy this.",
                "Very disappointed, it stopped working immediately."]
    scores, labels = model.score(positive + negative)
    assert (scores[:3] > 0.6).all() and (scores[3:] < 0.4).all()
    assert labels.tolist() == ["positive"] * 3 + ["negative"] * 3


def test_torch_takes_half_the_cores_and_never_more_than_there_are():
    import os

    import torch

    from ecomarket_assets.text.model import limit_torch_threads

    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0))
    try:
        assert limit_torch_threads() == torch.get_num_threads() == max(1, cores // 2)
        assert limit_torch_threads(cores + 5) == cores and limit_torch_threads(1) == 1
    finally:
        torch.set_num_threads(before)
