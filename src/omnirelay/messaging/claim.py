"""The dispatch claim's decisions that need no ORM object (ADR 25): a batch of claimed
messages, as the claim's UPDATE ... RETURNING gave them, sorted into released, queued for
a session owner, and sends for an adapter; written by the caller set-based."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from omnirelay.channels.base import Adapter, Outbound, get_adapter
from omnirelay.config import get_settings
from omnirelay.messaging import claim_repository as claims
from omnirelay.messaging import pipeline

SANDBOXES = ("sandbox", "wa_sandbox")


@dataclass
class Send:
    """One claimed message whose step goes to its adapter."""

    message_id: str
    step: int
    attempt: dict[str, Any]  # the MessageAttempt's columns
    adapter: Adapter
    outbound: Outbound
    debited: int  # a later step's price, taken at the claim: given back on a retry
    # What recording ``sent`` needs of the message, read at the claim.
    method: str
    organization_id: str
    custom_id: str | None
    report_url: str | None


class FastClaim:
    """The claim's decisions that need no ORM object: a message already final is
    released, a first step on a session-based provider is queued for its owner, one on
    any other adapter becomes a ``Send``. ``take`` says False for the rest."""

    def __init__(self, now: datetime, connections: dict[int, claims.ConnectionRow]) -> None:
        self.now = now
        self.connections = connections
        self.released: list[str] = []
        self.queued: list[dict[str, Any]] = []
        self.queued_messages: list[dict[str, Any]] = []
        self.sends: list[Send] = []
        self._settings: dict[int, dict[str, Any]] = {}
        self._override = get_settings().sandbox_report_delay

    def take(self, row: Any) -> bool:
        if row.final_at is not None:
            self.released.append(row.id)
            return True
        if row.step > 0 or row.method in pipeline.DISPATCH_GATES:
            return False  # daylight, a later step's debit, a gate: the ORM path
        step = row.route[row.step]
        connection = self.connections.get(int(step["connection_id"]))
        if connection is None or connection.deleted or not connection.active:
            return False  # the step fails (1016): the ORM path writes it
        adapter = get_adapter(connection.provider)
        if adapter is None:
            return False
        now = self.now
        attempt = {
            "message_id": row.id,
            "organization_id": row.organization_id,
            "step": row.step,
            "channel": step["channel"],
            "connection_id": connection.id,
            "provider": step.get("provider", "sandbox"),
            "sender": step.get("sender"),
            "status": "accepted",
            "price": int(row.price),  # debited when the message was accepted
            "parts": int(step.get("parts", 1)),
            "created_at": now,
            "status_at": now,
        }
        if getattr(adapter, "session_based", False):
            # A long-lived session (SMPP) sends it: the attempt is queued for the session
            # owner, its ttl running from now (an SMSC that is down does not hold it).
            attempt.update(
                status="queued",
                expires_at=now + timedelta(seconds=int(step["ttl"])),
                provider_message_id=None,
                code=None,
                error=None,
            )
            self.queued.append(attempt)
            self.queued_messages.append({"mid": row.id, "channel": step["channel"], "now": now})
            return True
        settings = self._settings.get(connection.id)
        if settings is None:
            settings = dict(connection.settings)
            if connection.provider in SANDBOXES and self._override is not None:
                delay = self._override
                settings.update(report_delay=delay, read_delay=delay, reply_delay=delay)
            self._settings[connection.id] = settings
        outbound = Outbound(
            message_id=row.id,
            channel=step["channel"],
            phone=step["phone"],
            sender=step.get("sender"),
            text=step.get("text"),
            image=step.get("image"),
            action=step.get("action"),
            ttl=int(step["ttl"]),
            settings=settings,
            try_number=int(row.tries) + 1,
            extra=step.get("extra") or {},
        )
        self.sends.append(
            Send(
                row.id,
                row.step,
                attempt,
                adapter,
                outbound,
                0,
                row.method,
                row.organization_id,
                row.custom_id,
                row.report_url,
            )
        )
        return True
