"""Housekeeping: what no request cleans up by itself (expired idempotency keys, uploaded
files no message needs any more), swept on a timer by every process that runs workers."""
