"""Sentiment accuracy of the three review models, on text none of them trained on.

    .venv/bin/python benchmarks/sentiment_eval.py [--users 3000 --products 400 --days 90 --seed 7]
                                                  [--cache PATH] [--datasets DIR]

(a) logistic regression on the simulated shop's own ratings, (b) logistic
regression on the UCI yelp + imdb sentences, (c) zero-shot anchors; each scored
on the UCI Amazon product-review sentences. (a) is also scored on a time split
of the shop's reviews (train on the earliest 80 %, test on the latest 20 %),
and on the test reviews whose exact text does not occur in its training part.
Embeddings go through the same cache the assets use (default: the data
directory's), so a second run encodes nothing. Prints a table; not a timed test.
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

    cfg = SimConfig(n_users=args.users, n_products=args.products, n_days=args.days, seed=args.seed)
    reviews = simulate(cfg).tables.reviews
    positive, negative = sent.class_counts(reviews["rating"])

    start = time.perf_counter()
    model, reason = sent.choose_model(reviews["text"], reviews["rating"], embed)
    held_out = bench.held_out_accuracy(reviews, embed) if model.kind == sent.OWN_RATINGS else None
    benchmark = bench.external_benchmark(embed, datasets, own=model if model.kind == sent.OWN_RATINGS else None,
                                         own_note=reason, chosen=model.kind)
    eval_seconds = time.perf_counter() - start

    def pct(x) -> str:
        return "-" if x is None or pd.isna(x) else f"{x:.3f}"

    table = pd.DataFrame({
        "model": benchmark["description"],
        "trained on": benchmark["trained_on"],
        "shop held-out": [pct(held_out.accuracy) if held_out and k == sent.OWN_RATINGS else "-" for k in benchmark["model"]],
        "held-out, unseen texts": [pct(held_out.accuracy_unseen) if held_out and k == sent.OWN_RATINGS else "-"
                                   for k in benchmark["model"]],
        "Amazon accuracy": benchmark["amazon_accuracy"].map(pct),
        "note": benchmark["note"],
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


if __name__ == "__main__":
    main()
