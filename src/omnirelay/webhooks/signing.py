"""Standard Webhooks signatures: ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">``, several space-separated while a secret is being rotated."""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def keys(secrets_: Sequence[str]) -> tuple[bytes, ...]:
    """The HMAC keys of secrets, decoded once (a batch of deliveries shares them)."""
    return tuple(_key(s) for s in secrets_)


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
