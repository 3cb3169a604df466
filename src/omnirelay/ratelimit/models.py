"""Rate-limit tables."""
