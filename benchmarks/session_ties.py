"""How often session re-ranking leaves lines tied, and how often only the product id orders them.

    .venv/bin/python benchmarks/session_ties.py --data-dir data [--sessions 150] [--k 10] [--seed 0]

On a data directory with the recommendation graph materialized (`make run`), `--sessions` known users are
drawn (seeded), each with a two-view session, newest first: a catalog product with neighbours and, before it,
one of its 5 strongest neighbours (people browse related products; `--unrelated`: any other product). Each answer (the API's `recommend`, top `k`) is then read for groups of 3 or more lines with the
same shown score, and for such groups in which nothing but the product id set the order: the same nightly
position and, where the re-ranker has one, the same model prior.
"""

from __future__ import annotations

import argparse
import inspect
import random
from collections import Counter
from pathlib import Path

from ecomarket_assets.serving import session
from ecomarket_assets.serving.lists import RecommendationService


def measure(data_dir: Path, sessions: int, k: int, seed: int, related: bool = True) -> dict[str, int]:
    service = RecommendationService(data_dir, session_minutes=0)
    service.refresh()
    recs, items = service.recs.value, service.items.value
    if recs is None or items is None or not items.neighbours:
        raise SystemExit(f"{data_dir}: no recommendations or no pair state; run `make run` first")
    rng = random.Random(seed)
    users = rng.sample(sorted(recs.by_user), sessions)
    products = sorted(items.neighbours)
    has_prior = "prior" in inspect.signature(session.rerank).parameters
    prior = getattr(items, "popularity", {}) if has_prior else {}
    counts = Counter()
    for user in users:
        newest = rng.choice(products)
        before = [p for p, _ in items.neighbours[newest][:5]] if related else [p for p in products if p != newest]
        viewed = [newest, rng.choice(before)]
        answer = service.recommend(user, viewed, k)["items"]
        position = {item.product_id: i for i, item in enumerate(recs.by_user[user])}
        scores = Counter(line["score"] for line in answer)
        keys = Counter((line["score"], position.get(line["product_id"], -1), prior.get(line["product_id"], 0.0))
                       for line in answer)
        counts["sessions"] += 1
        counts["tied_3_or_more"] += any(n >= 3 for n in scores.values())
        counts["ordered_by_product_id_3_or_more"] += any(n >= 3 for n in keys.values())
        counts["tied_at_0.5_3_or_more"] += scores.get(0.5, 0) >= 3
    return dict(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--sessions", type=int, default=150)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unrelated", action="store_true", help="the earlier view is any other product")
    args = parser.parse_args()
    for name, value in measure(args.data_dir, args.sessions, args.k, args.seed, not args.unrelated).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
