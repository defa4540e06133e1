"""KeyBERT-style key phrases per product, from its reviews.

For each product: candidate phrases are the 1-3-grams of its review texts
(scikit-learn `CountVectorizer`, English stop words removed); the document
vector is the mean of its review embeddings. Candidates are ranked by cosine
similarity to the document and picked with Maximal Marginal Relevance, so the
five phrases are relevant but not five wordings of the same thing:

    mmr(c) = lambda * sim(c, doc) - (1 - lambda) * max_{s selected} sim(c, s)

`lambda` = 1 is pure relevance, 0 pure diversity (KeyBERT's `diversity` is
1 - lambda). Every distinct candidate phrase is embedded once per run, through
the same embedding cache as everything else.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ecomarket_assets.text.sentiment import Embed

TOP_N = 5
MMR_LAMBDA = 0.6
NGRAM_RANGE = (1, 3)
MAX_CANDIDATES = 200  # per product, the most frequent phrases: bounds the work for products with many reviews


def candidate_phrases(texts: Sequence[str], ngram_range: tuple[int, int] = NGRAM_RANGE,
                      max_candidates: int = MAX_CANDIDATES) -> list[str]:
    """1-3-gram phrases without English stop words, most frequent first (ties alphabetical); [] if none."""
    from sklearn.feature_extraction.text import CountVectorizer

    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        return []
    vectorizer = CountVectorizer(ngram_range=ngram_range, stop_words="english")
    try:
        counts = np.asarray(vectorizer.fit_transform(texts).sum(axis=0)).ravel()
    except ValueError:  # only stop words / punctuation
        return []
    names = vectorizer.get_feature_names_out()
    order = np.lexsort((names, -counts))
    return [str(names[i]) for i in order[:max_candidates]]


def mmr(document: np.ndarray, candidate_vectors: np.ndarray, candidates: Sequence[str], top_n: int = TOP_N,
        lambda_: float = MMR_LAMBDA) -> list[tuple[str, float]]:
    """Maximal Marginal Relevance: up to `top_n` (phrase, similarity to the document), in pick order.

    Vectors need not be normalised; cosine similarity is used throughout.
    """
    if len(candidates) == 0 or top_n <= 0:
        return []
    def unit(x: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(x, axis=-1, keepdims=True)
        return x / np.where(norms == 0, 1.0, norms)

    vectors = unit(np.asarray(candidate_vectors, dtype=float))
    relevance = vectors @ unit(np.asarray(document, dtype=float))
    pairwise = vectors @ vectors.T
    selected = [int(np.argmax(relevance))]
    while len(selected) < min(top_n, len(candidates)):
        redundancy = pairwise[:, selected].max(axis=1)
        score = lambda_ * relevance - (1 - lambda_) * redundancy
        score[selected] = -np.inf
        selected.append(int(np.argmax(score)))
    return [(str(candidates[i]), float(relevance[i])) for i in selected]


def product_keywords(reviews: pd.DataFrame, review_vectors: np.ndarray, embed: Embed, top_n: int = TOP_N,
                     lambda_: float = MMR_LAMBDA, max_candidates: int = MAX_CANDIDATES) -> dict[str, list[str]]:
    """{product_id: key phrases, best first} from `reviews` (product_id, text) and their vectors (same rows).

    All products' candidate phrases are embedded in one call (each distinct phrase once).
    """
    if reviews.empty:
        return {}
    product_ids = reviews["product_id"].to_numpy()
    texts = reviews["text"].to_numpy()
    rows_by_product = pd.Series(np.arange(len(reviews))).groupby(product_ids, sort=True).apply(list)
    candidates = {p: candidate_phrases(texts[rows].tolist(), max_candidates=max_candidates)
                  for p, rows in rows_by_product.items()}
    phrases = sorted({c for cs in candidates.values() for c in cs})
    if not phrases:
        return {p: [] for p in candidates}
    phrase_vectors = np.asarray(embed(phrases))
    position = {phrase: i for i, phrase in enumerate(phrases)}
    keywords: dict[str, list[str]] = {}
    for product, rows in rows_by_product.items():
        cs = candidates[product]
        if not cs:
            keywords[product] = []
            continue
        document = np.asarray(review_vectors)[rows].mean(axis=0)
        picked = mmr(document, phrase_vectors[[position[c] for c in cs]], cs, top_n=top_n, lambda_=lambda_)
        keywords[product] = [phrase for phrase, _ in picked]
    return keywords
