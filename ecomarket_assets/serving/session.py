"""Re-ranking a served list by the products viewed in the current session.

A served list (the nightly top-K of a known user, or the popular / trending list of a cold user) is re-ordered
by a blend of two parts, each in [0, 1]:

    value(p) = (1 - SESSION_WEIGHT) * nightly(p) + SESSION_WEIGHT * session(p)

`nightly(p) = 1 - position / len(list)` (1 for the first line, 0 for products not in the list): the ranker's
scores are logits that mean nothing next to a similarity, so only the order it chose is kept. `session(p)` is
how strongly `p` neighbours the viewed products, each viewed product `v` (newest first) contributing
`c = RECENCY ** position(v) * strength(v, p)`, where `strength` is the neighbour strength of
`lists.neighbour_lists` (1 for the strongest neighbour of `v`), combined as a probabilistic or:
`session(p) = 1 - prod(1 - c)`. So the newest view counts fully, the one before half, and only the last
`MAX_VIEWS` count: a session is about what the person looks at now. Each view adds to the part without ever
taking it past 1, and the part reaches 1 only for the strongest neighbour of the newest view. A capped sum
made every product that neighboured two views well tie at exactly 1: on the demo shop, 106 of 150 sessions of
two related views had 3 or more lines tied at 0.5, 95 of them in product id order; none now
(`benchmarks/session_ties.py`).

With SESSION_WEIGHT = 0.5 the strongest neighbour of the newest view lands right after the nightly first line;
a neighbour that is already in the list moves up by up to half a list. A product outside the nightly list
enters only when `session(p) >= MIN_ENTRY`, so a weak neighbour never pushes out a line the ranker chose. A
line whose session part outweighs its nightly part is the session's doing, so it gets the reason "Because you
just viewed <title>" (`reason_type` "session", the title of the viewed product that contributed most); the
others keep their nightly reason. The viewed products themselves are not shown again, unless nothing else is
left to fill `k` lines.

Ties follow the model: the nightly order first, then, among products entering from outside the list, the
model's `prior` (the product's popularity, in [0, 1]: what the model serves a user it knows nothing about), and
only then the product id, so the answer is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

SESSION_WEIGHT = 0.5
RECENCY = 0.5
MAX_VIEWS = 5
MIN_ENTRY = 0.3


class Item(NamedTuple):
    """One line of a served list."""

    product_id: str
    title: str | None
    score: float
    reason: str
    reason_type: str


# product id -> its neighbours, strongest first: ((neighbour id, strength in (0, 1]), ...)
Neighbours = Mapping[str, Sequence[tuple[str, float]]]


def session_affinity(viewed: Sequence[str], neighbours: Neighbours) -> dict[str, tuple[float, str]]:
    """product id -> (session part in (0, 1], the viewed product contributing most to it)."""
    parts: dict[str, list] = {}  # product -> [part so far, anchor, its contribution]
    for position, anchor in enumerate(viewed[:MAX_VIEWS]):
        weight = RECENCY ** position
        for product, strength in neighbours.get(anchor, ()):
            value = weight * strength
            entry = parts.get(product)
            if entry is None:
                parts[product] = [value, anchor, value]
            else:
                entry[0] += value - entry[0] * value  # 1 - (1 - part) * (1 - value), exact for one view
                if value > entry[2]:
                    entry[1], entry[2] = anchor, value
    return {p: (min(part, 1.0), anchor) for p, (part, anchor, _) in parts.items()}


def rerank(base: Sequence[Item], viewed: Sequence[str], neighbours: Neighbours, titles: Mapping[str, str],
           k: int, prior: Mapping[str, float] | None = None) -> tuple[list[Item], bool]:
    """The top `k` of `base` re-ranked by the session (see the module docstring), and whether the session
    changed anything. `viewed` is newest first, already limited to known products; `titles` names products
    entering from the session (products without a title never enter); `prior` orders products entering with
    equal values (missing: 0)."""
    seen = set(viewed)
    affinity = session_affinity(viewed, neighbours) if viewed else {}
    if not affinity:
        kept = [item for item in base if item.product_id not in seen]
        return _fill(kept, [item for item in base if item.product_id in seen], k), False
    n = len(base)
    prior = prior or {}
    rows = []  # (value, nightly position, -prior, product id, item)
    in_base = set()
    for position, item in enumerate(base):
        in_base.add(item.product_id)
        nightly = (1.0 - SESSION_WEIGHT) * (1.0 - position / n)
        session, anchor = affinity.get(item.product_id, (0.0, None))
        boost = SESSION_WEIGHT * session
        if boost > nightly:
            item = _from_session(item.product_id, item.title, anchor, titles)
        rows.append((round(nightly + boost, 6), position, 0.0, item.product_id, item))
    for product, (session, anchor) in affinity.items():
        if product not in in_base and session >= MIN_ENTRY and product in titles:
            entering = _from_session(product, titles[product], anchor, titles)
            rows.append((round(SESSION_WEIGHT * session, 6), n, -prior.get(product, 0.0), product, entering))
    rows.sort(key=lambda r: (-r[0], r[1], r[2], r[3]))  # equal (shown) values: the model decides
    ranked = [item._replace(score=value) for value, _, _, _, item in rows]
    kept = [item for item in ranked if item.product_id not in seen]
    return _fill(kept, [item for item in ranked if item.product_id in seen], k), True


def _from_session(product: str, title: str | None, anchor: str, titles: Mapping[str, str]) -> Item:
    return Item(product, title, 0.0, f"Because you just viewed {titles.get(anchor, anchor)}", "session")


def _fill(kept: list[Item], viewed_items: list[Item], k: int) -> list[Item]:
    """The first k lines; viewed products only when nothing else is left."""
    return (kept + viewed_items)[:k] if len(kept) < k else kept[:k]


def merge_views(*lists: Sequence[str] | None, known: Mapping[str, object] | None = None,
                limit: int = 20) -> list[str]:
    """The viewed products, newest first: the lists in the order given (the caller's own first), duplicates
    and unknown products dropped (`known`: the catalog; None accepts everything)."""
    out, seen = [], set()
    for views in lists:
        for product in views or ():
            if product and product not in seen and (known is None or product in known):
                seen.add(product)
                out.append(product)
                if len(out) >= limit:
                    return out
    return out
