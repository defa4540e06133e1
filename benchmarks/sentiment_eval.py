"""Sentiment balanced accuracy of the review models, on text none of them trained on.

    .venv/bin/python benchmarks/sentiment_eval.py [--users 3000 --products 400 --days 90 --seed 7]
                                                  [--cache PATH] [--datasets DIR] [--skip-shops]

(a) embeddings + TF-IDF logistic regression on the simulated shop's own
ratings, (b) logistic regression on the UCI yelp + imdb sentences, (c)
zero-shot anchors; each scored on the UCI Amazon product-review sentences. (a)
is also scored on a time split of the shop's reviews (train on the earliest
80 %, test on the latest 20 %) beside its rivals on the same ratings (TF-IDF +
LR, embeddings + LR), and on the test reviews whose exact text does not occur
in its training part. Then each UCI file (Amazon, Yelp, IMDb) as a shop of its
own (`sentiment_benchmark.separate_shops`: file order, first 80 % train, last
20 % test). Shop reviews go through the data directory's cache, the UCI
sentences through the machine-wide reference cache, so a second run encodes
nothing. Prints tables; not a timed test.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from ecomarket_assets.simulator.shop import SimConfig

    defaults = SimConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=defaults.n_users)
    parser.add_argument("--products", type=int, default=defaults.n_products)
    parser.add_argument("--days", type=int, default=defaults.n_days)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache (default: <data dir>/cache/embeddings.parquet)")
    parser.add_argument("--datasets", type=Path, default=None, help="folder with the UCI sentiment files")
    parser.add_argument("--skip-shops", action="store_true", help="leave out the UCI files as separate shops")
    args = parser.parse_args()

    import pandas as pd

    from ecomarket_assets.resources import DataDirResource
    from ecomarket_assets.settings import plain
    from ecomarket_assets.simulator.shop import simulate
    from ecomarket_assets.text import embeddings as emb
    from ecomarket_assets.text import sentiment as sent
    from ecomarket_assets.text import sentiment_benchmark as bench
    from ecomarket_assets.text.model import EmbeddingModelResource

    cache = args.cache or emb.cache_path(plain(DataDirResource).layout().root)
    datasets = bench.sentiment_datasets_dir(str(args.datasets or plain(EmbeddingModelResource).sentiment_data))

    start = time.perf_counter()
    encoder = plain(EmbeddingModelResource).encoder()
    encoder.model  # noqa: B018 - load now (it is lazy) so the load is timed apart from encoding
    load_seconds = time.perf_counter() - start
    embed = emb.CachedEmbedder(encoder, cache)
    reference = emb.CachedEmbedder(encoder, emb.reference_cache_path(plain(EmbeddingModelResource).reference_cache))

    cfg = SimConfig(n_users=args.users, n_products=args.products, n_days=args.days, seed=args.seed)
    reviews = simulate(cfg).tables.reviews
    positive, negative = sent.class_counts(reviews["rating"])

    start = time.perf_counter()
    general = bench.general_models(reference, datasets)
    model, reason = sent.choose_model(reviews["text"], reviews["rating"], embed, general,
                                      bench.amazon_sentences(datasets))
    held_out = bench.held_out_accuracy(reviews, embed) if model.kind == sent.OWN_RATINGS else None
    benchmark = bench.external_benchmark(reference, datasets, own=model if model.kind == sent.OWN_RATINGS else None,
                                         own_note=reason, chosen=model.kind, general=general)
    eval_seconds = time.perf_counter() - start

    def pct(x) -> str:
        return "-" if x is None or pd.isna(x) else f"{x:.3f}"

    def shop_figure(kind: str, unseen: bool = False) -> str:
        return pct(held_out.figure(kind, unseen=unseen)) if held_out else "-"

    kinds = [*benchmark["model"], sent.TFIDF_LR, sent.EMBEDDINGS_LR] if held_out else list(benchmark["model"])
    amazon = benchmark.set_index("model")
    table = pd.DataFrame({
        "model": [bench.MODEL_DESCRIPTIONS[k] for k in kinds],
        "shop held-out BA": [shop_figure(k) for k in kinds],
        "held-out, unseen texts BA": [shop_figure(k, unseen=True) for k in kinds],
        "Amazon BA": [pct(amazon["amazon_balanced_accuracy"].get(k)) for k in kinds],
        "Amazon accuracy": [pct(amazon["amazon_accuracy"].get(k)) for k in kinds],
        "note": [amazon["note"].get(k, "same ratings as (a), not chosen") for k in kinds],
    })
    print(f"shop: simulator {cfg.n_users} users, {cfg.n_products} products, {cfg.n_days} days, seed {cfg.seed}: "
          f"{len(reviews)} reviews ({positive} with 4-5 stars, {negative} with 1-2 stars)")
    print(f"chosen for the shop: {reason}")
    if held_out is not None:
        print(f"shop held-out: {held_out.split} split, trained on {held_out.train_reviews}, tested on "
              f"{held_out.test_reviews} ({held_out.unseen_test_reviews} with texts unseen in training)"
              + (f", test from {held_out.test_from}" if held_out.test_from else ""))
    print(f"Amazon sentences: {int(benchmark['amazon_sentences'].max())} from {datasets}")
    print()
    print(table.to_markdown(index=False))
    print()
    stats = embed.stats
    rate = f"{stats.per_second:.0f} texts/s" if stats.per_second else "n/a (all cached)"
    print(f"model load {load_seconds:.1f} s; evaluation {eval_seconds:.1f} s; distinct texts {stats.unique}: "
          f"{stats.cached} cached, {stats.encoded} encoded at {rate}; cache {cache}")
    if not args.skip_shops:
        start = time.perf_counter()
        shops = bench.separate_shops(reference, datasets)
        print("\nUCI files as separate shops (file order: first 80 % train, last 20 % test), balanced accuracy:\n")
        print(bench.shops_summary(shops).round(3).to_markdown(index=False))
        print(f"\nseparate shops {time.perf_counter() - start:.1f} s")
        for note in shops.loc[shops["model"] == bench.CHOSEN, ["shop", "note"]].itertuples(index=False):
            print(f"  {note.shop}, without ratings: {note.note}")


if __name__ == "__main__":
    main()
