"""Job queue tables."""
