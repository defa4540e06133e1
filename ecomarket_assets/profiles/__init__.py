"""Customer profiles: per-customer summaries and lifetime-value models."""
