"""Campaign specs: YAML campaigns that marketing writes, and the safe audience-rule language they use."""
