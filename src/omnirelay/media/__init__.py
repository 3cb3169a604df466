"""Media storage (seed 004): upload slots (a signed form POST, valid one hour, single use,
10 MB at most) and direct links; local disk by default, an S3-compatible bucket when
configured (ADR 21)."""
