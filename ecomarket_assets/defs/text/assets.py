"""Text assets: product embeddings and review insights (sentiment, key phrases).

Both encode through one embedding cache under the data directory, so a text
(product, review, candidate phrase, evaluation sentence) is encoded once and
an unchanged catalog costs no model time on the next run: the model itself is
only loaded when some text is not in the cache yet.
"""


import dagster as dg
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.defs.ingestion.assets import catalog, reviews
from ecomarket_assets.resources import DataDirResource
from ecomarket_assets.storage import (
    new_build_dir,
    read_frame,
    replace_dir,
    write_frame,
    write_table,
)
from ecomarket_assets.text import embeddings as emb
from ecomarket_assets.text import keywords as kw
from ecomarket_assets.text import plots
from ecomarket_assets.text import sentiment as sent
from ecomarket_assets.text import sentiment_benchmark as bench
from ecomarket_assets.text.model import EmbeddingModelResource

GROUP = "text"
OWNERS = ["team:data-science"]


def _stats_metadata(stats: emb.EmbedStats, rate_key: str = "texts_per_second") -> dict[str, object]:
    """Distinct texts: newly encoded vs found in the cache, and the encoding rate (None when all were cached)."""
    return {
        "distinct_texts": stats.unique,
        "newly_encoded": stats.encoded,
        "cached": stats.cached,
        "encode_seconds": round(stats.seconds, 2),
        rate_key: round(stats.per_second, 1) if stats.per_second else None,
    }


@dg.asset(
    group_name=GROUP,
    kinds={"python", "pytorch", "parquet"},
    owners=OWNERS,
    deps=[catalog],
    description=(
        "One sentence embedding per catalog product (all-MiniLM-L6-v2, 384 floats, unit norm) of "
        "'title. description. Category: category.'; only new or changed product texts are encoded."
    ),
    metadata={"dagster/column_schema": dg.TableSchema(columns=[
        dg.TableColumn("product_id", "string"),
        dg.TableColumn("embedding", "fixed_size_list<float32>[384]", description="unit-norm sentence embedding"),
        dg.TableColumn("text_hash", "string", description="SHA-1 of the embedded text (the cache key)"),
    ])},
)
def product_embeddings(data_dir: DataDirResource, embedding_model: EmbeddingModelResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    products = read_frame(layout.table("catalog"))
    texts = emb.product_text(products)
    encoder = embedding_model.encoder()
    vectors, stats = emb.embed_with_cache(texts, encoder, emb.cache_path(layout.root))
    path = write_table(emb.embeddings_table(products["product_id"], vectors, emb.text_hash(texts)),
                       emb.embeddings_path(layout.root))
    within, across = emb.category_similarity(vectors, products["category"])
    figure = emb.projection_plot(vectors, products["category"], "Product embeddings, PCA to 2-D")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(products),
        "products": len(products),
        **_stats_metadata(stats, "products_per_second"),
        "dimension": int(vectors.shape[1]),
        "model": getattr(encoder, "model_id", str(embedding_model.resolved_path())),
        "similarity_within_category": _rounded(within),
        "similarity_across_categories": _rounded(across),
        "similarity_gap": _rounded(within - across),
        "projection": md.plot(figure),
        "preview": md.preview(products.assign(text=texts)[["product_id", "category", "text"]]),
        "path": dg.MetadataValue.path(str(path)),
        "cache_path": dg.MetadataValue.path(str(emb.cache_path(layout.root))),
    })


@dg.asset(
    group_name=GROUP,
    kinds={"python", "scikitlearn", "parquet"},
    owners=OWNERS,
    # Not a dep on product_embeddings: the vectors are not read here, and a false edge would re-run this asset
    # on every catalog change. Both assets may write the shared cache at once; a file lock serialises that.
    deps=[reviews],
    description=(
        "Sentiment of every review (score 0..1, label) and, per reviewed product, review count, share positive, "
        "mean score and top-5 key phrases. Model: embeddings + TF-IDF n-grams on the shop's own ratings when it has "
        ">= 20 rated reviews per class, otherwise the general model (yelp + imdb, or zero-shot) with the best balanced "
        "accuracy on the UCI Amazon sentences; balanced accuracy reported on held-out shop reviews (beside TF-IDF and "
        "embeddings rivals) and on the Amazon sentences."
    ),
    metadata={"dagster/column_schema": sent.REVIEW_SCORES.dagster(),
              "products_column_schema": sent.PRODUCT_INSIGHTS.dagster()},
)
def review_insights(data_dir: DataDirResource, embedding_model: EmbeddingModelResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    paths = sent.insights_paths(layout.root)
    stored = read_frame(layout.table("reviews"))
    if stored.empty:
        _write_insights(paths, sent.REVIEW_SCORES.empty(), sent.PRODUCT_INSIGHTS.empty(), bench.EVALUATION.empty())
        return dg.MaterializeResult(metadata={
            "dagster/row_count": 0, "reviews": 0, "products_with_reviews": 0,
            "model_used": "none", "model_reason": "no reviews in this source",
            "path": dg.MetadataValue.path(str(paths["reviews"])),
            "products_path": dg.MetadataValue.path(str(paths["products"])),
        })

    embed = emb.CachedEmbedder(embedding_model.encoder(), emb.cache_path(layout.root))
    # The general models and their held-out set are the same for every shop: encoded through the machine-wide cache.
    reference = emb.CachedEmbedder(embed.encoder, emb.reference_cache_path(embedding_model.reference_cache))
    datasets = bench.sentiment_datasets_dir(embedding_model.sentiment_data)
    general = bench.general_models(reference, datasets)
    model, reason = sent.choose_model(stored["text"], stored["rating"], embed, general, bench.amazon_sentences(datasets))
    held_out = bench.held_out_accuracy(stored, embed) if model.kind == sent.OWN_RATINGS else None
    benchmark = bench.external_benchmark(reference, datasets, own=model if model.kind == sent.OWN_RATINGS else None,
                                         own_note=reason, chosen=model.kind, general=general)
    scored = sent.score_reviews(stored, model)
    phrases = kw.product_keywords(stored, embed(stored["text"]), embed)
    products = sent.product_insights(scored, phrases)
    _write_insights(paths, scored, products, bench.evaluation_table(benchmark, held_out))
    meta = _insights_metadata(scored, products, model, reason, held_out, benchmark, embed.stats, paths)
    meta.update({"reference_newly_encoded": reference.stats.encoded, "reference_cached": reference.stats.cached,
                 "reference_cache_path": dg.MetadataValue.path(str(reference.cache_path))})
    return dg.MaterializeResult(metadata=meta)


def _write_insights(paths: dict, scored: pd.DataFrame, products: pd.DataFrame, evaluation: pd.DataFrame) -> None:
    """The three tables are built aside and swapped in together: readers never see a mix of two runs."""
    folder = paths["reviews"].parent
    build = new_build_dir(folder)
    for name, frame, schema in (("reviews", scored, sent.REVIEW_SCORES), ("products", products, sent.PRODUCT_INSIGHTS),
                                ("evaluation", evaluation, bench.EVALUATION)):
        write_frame(frame, build / paths[name].name, schema)
    replace_dir(build, folder)


def _rounded(value: float) -> float | None:
    """Metadata float, or None (shown as null) when not evaluated."""
    return None if pd.isna(value) else round(float(value), 4)


def _insights_metadata(scored: pd.DataFrame, products: pd.DataFrame, model: sent.SentimentModel, reason: str,
                       held_out: bench.HeldOut | None, benchmark: pd.DataFrame, stats: emb.EmbedStats,
                       paths: dict) -> dict[str, object]:
    by_kind = benchmark.set_index("model")
    accuracy_table = benchmark.assign(amazon_balanced_accuracy=benchmark["amazon_balanced_accuracy"].map(_rounded),
                                      amazon_accuracy=benchmark["amazon_accuracy"].map(_rounded))[
        ["description", "trained_on", "amazon_balanced_accuracy", "amazon_accuracy", "amazon_sentences", "chosen",
         "note"]]
    labels = scored["sentiment_label"].value_counts()
    top = products.head(10).assign(top_keywords=products["top_keywords"].head(10).map("; ".join),
                                   share_positive=products["share_positive"].head(10).round(2),
                                   mean_score=products["mean_score"].head(10).round(3))
    meta: dict[str, object] = {
        "dagster/row_count": len(scored),
        "reviews": len(scored),
        "products_with_reviews": len(products),
        "model_used": model.kind,
        "model_reason": reason,
        "model_trained_on_reviews": model.trained_on,
        "model_settings": md.table({k: float(v) for k, v in model.settings.items()}, "setting", "value")
        if model.settings else "none (not chosen by cross-validation)",
        "shop_held_out_balanced_accuracy": _rounded(held_out.balanced_accuracy) if held_out else None,
        "shop_held_out_balanced_accuracy_tfidf_lr": _rounded(held_out.figure(sent.TFIDF_LR)) if held_out else None,
        "shop_held_out_balanced_accuracy_embeddings_lr": _rounded(held_out.figure(sent.EMBEDDINGS_LR))
        if held_out else None,
        "shop_held_out_accuracy": _rounded(held_out.accuracy) if held_out else None,
        "shop_held_out_reviews": held_out.test_reviews if held_out else 0,
        "shop_held_out_split": (f"{held_out.split}" + (f" (test from {held_out.test_from})" if held_out.test_from else ""))
        if held_out else "not evaluated: " + reason,
        "shop_held_out_balanced_accuracy_unseen_texts": _rounded(held_out.balanced_accuracy_unseen) if held_out else None,
        "shop_held_out_unseen_texts": held_out.unseen_test_reviews if held_out else 0,
        "amazon_balanced_accuracy_own_ratings": _rounded(by_kind.loc[sent.OWN_RATINGS, "amazon_balanced_accuracy"]),
        "amazon_balanced_accuracy_yelp_imdb": _rounded(by_kind.loc[sent.EXTERNAL, "amazon_balanced_accuracy"]),
        "amazon_balanced_accuracy_zero_shot": _rounded(by_kind.loc[sent.ZERO_SHOT, "amazon_balanced_accuracy"]),
        "amazon_balanced_accuracy_chosen_model": _rounded(by_kind.loc[model.kind, "amazon_balanced_accuracy"]),
        "amazon_evaluation": md.table(accuracy_table),
        "labels": md.table({k: int(labels.get(k, 0)) for k in sent.LABELS}, "label", "reviews"),
        "mean_score_by_rating": md.table(scored.groupby("rating")["sentiment_score"].mean().round(3)
                                         .rename_axis("stars").reset_index()),
        "most_reviewed_products": md.preview(top),
        "score_by_rating": md.plot(plots.score_histogram(scored)),
        **_stats_metadata(stats),
        "path": dg.MetadataValue.path(str(paths["reviews"])),
        "products_path": dg.MetadataValue.path(str(paths["products"])),
        "evaluation_path": dg.MetadataValue.path(str(paths["evaluation"])),
    }
    return meta
