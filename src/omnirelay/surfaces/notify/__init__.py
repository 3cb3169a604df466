"""The notifications surface (seed 001), mounted at /v3."""
