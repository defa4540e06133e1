"""Text / NLP: product embeddings with a cache, review sentiment, review key phrases (no Dagster here)."""
