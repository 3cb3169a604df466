"""Idempotency keys: a retried create answers like the first one, for 24 hours."""
