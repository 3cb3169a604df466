"""Secrets: generated with ``secrets``, stored only as SHA-256 digests.

The secrets are random with 128+ bits of entropy, so a fast digest is enough (no
password stretching needed) and allows lookup by digest in one indexed query.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_subscription_key() -> str:
    """32 lowercase hex characters, the shape API gateways use for subscription keys."""
    return secrets.token_hex(16)


def new_token(prefix: str) -> str:
    """A bearer token whose prefix tells its kind (``ora_`` access, ``orw_`` workspace)."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def display_prefix(value: str) -> str:
    """What may be shown of a secret after creation: enough to recognise it, not to use it."""
    return value[:8]


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
