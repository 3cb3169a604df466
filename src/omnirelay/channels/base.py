"""The adapter interface every provider implements, and the registry of providers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Outbound:
    """What an adapter is asked to send: one route step of one message."""

    message_id: str
    channel: str
    phone: str  # E.164 digits
    sender: str | None
    text: str | None
    image: str | None = None
    action: dict[str, str] | None = None
    ttl: int = 600
    try_number: int = 1  # 1 for the first try of this step, 2 after a retriable error, ...
    settings: dict[str, Any] = field(default_factory=dict)  # the connection's
    # Channel-specific parts of the step, e.g. a WhatsApp device's media ``url`` and
    # ``filename``, ``location`` ("lat,long"), ``preview`` (bool).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderEvent:
    """Something a provider reports later: a status of a sent message or an inbound text.

    Real providers deliver these over their own protocol (an HTTP callback, an SMPP
    deliver_sm); the sandbox returns them with the send result, to be applied after
    ``delay`` seconds.
    """

    kind: str  # "status" | "inbound"
    delay: float = 0.0
    status: str | None = None
    code: int | None = None
    error: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    events: tuple[ProviderEvent, ...] = ()
    # (channel, payload) the transaction that records the send announces
    # (wakeup.announce), so listeners hear of it only once it is committed.
    notices: tuple[tuple[str, str], ...] = ()


class RetriableError(Exception):
    """The provider may take the message later (throttled, down): try again with backoff."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(Exception):
    """The provider refused the message for good: the step ends with this status/code."""

    def __init__(self, message: str, *, status: str = "rejected", code: int = 1000) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Adapter(Protocol):
    name: str
    channels: tuple[str, ...]

    def send(self, message: Outbound) -> SendResult: ...

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Return the settings to store, or raise ValueError naming what is wrong."""
        ...


_registry: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    _registry[adapter.name] = adapter
    return adapter


def get_adapter(provider: str) -> Adapter | None:
    _ensure_loaded()
    return _registry.get(provider)


def providers() -> list[str]:
    _ensure_loaded()
    return sorted(_registry)


_loaded = False
_load_lock = threading.RLock()  # re-entrant: a module being imported may ask for providers


def _ensure_loaded() -> None:
    # Not "registry empty": the first adapter registers itself while the others are still
    # being imported, and a worker thread asking then would find its provider missing.
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        from omnirelay.channels import (
            infobip_viber,  # noqa: F401
            sandbox,  # noqa: F401  (registers itself)
            telegram,  # noqa: F401
            viber_bot,  # noqa: F401
            vk,  # noqa: F401
            webchat,  # noqa: F401
            whatsapp_cloud,  # noqa: F401
        )
        from omnirelay.channels.smpp import adapter  # noqa: F401
        from omnirelay.channels.smtp import adapter as _smtp  # noqa: F401

        _loaded = True
