"""Standard Webhooks signatures: ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">``, several space-separated while a secret is being rotated."""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Sequence
from typing import Any

SECRET_PREFIX = "whsec_"


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def keys(secrets_: Sequence[str]) -> tuple[bytes, ...]:
    """The HMAC keys of secrets, decoded once (a batch of deliveries shares them)."""
    return tuple(_key(s) for s in secrets_)


def macs(keys_: Sequence[bytes]) -> tuple[Any, ...]:
    """HMAC-SHA256 objects keyed once (the pads hashed once): a delivery copies one and
    feeds it the message, about half the work of a one-shot ``hmac.digest``."""
    return tuple(hmac.new(k, digestmod="sha256") for k in keys_)


def signature(macs_: Sequence[Any], msg_id: str, timestamp: int, body: bytes) -> bytes:
    """The ``webhook-signature`` value for the keyed ``macs_`` (current first), ASCII."""
    prefix = f"{msg_id}.{timestamp}.".encode()
    parts = []
    for keyed in macs_:
        mac = keyed.copy()
        mac.update(prefix)
        mac.update(body)
        parts.append(b"v1," + base64.b64encode(mac.digest()))
    return b" ".join(parts)


def sign_with_key(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.digest(key, f"{msg_id}.{timestamp}.".encode() + body, "sha256")
    return "v1," + base64.b64encode(mac).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    return sign_with_key(_key(secret), msg_id, timestamp, body)


def headers_with_keys(
    keys_: Sequence[bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign_with_key(k, msg_id, timestamp, body) for k in keys_),
    }


def headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return headers_with_keys(keys(secrets_), msg_id, timestamp, body)
