"""The sandbox provider: behaves like a network, reaches nobody.

Magic recipients (the last six digits of the number; of an email address, the last six
characters of its local part) choose the outcome, on every channel, as docs/sandbox.md
lists:

    000001 undelivered   000002 no report at all (so the ttl expires)
    000003 rejected      04CCCC error with code CCCC (e.g. 041202 -> 1202)
    000005 delivered, then the end user replies
    000006 the provider is temporarily down for the first attempt (retried)

A connection's ``outcome`` setting forces one of these for every message it sends,
which is how a test makes one step of a route fail while the next one succeeds.
"""

from __future__ import annotations

import uuid
from typing import Any

from omnirelay.channels.base import (
    Outbound,
    PermanentError,
    ProviderEvent,
    RetriableError,
    SendResult,
    register,
)

# Seed 001 reports read for VK and Viber only; a WhatsApp device reports it too.
READ_CHANNELS = ("viber", "vk", "whatsapp")
OUTCOMES = ("delivered", "undelivered", "silent", "rejected", "error", "reply", "flaky")
MAGIC = {
    "000001": "undelivered",
    "000002": "silent",
    "000003": "rejected",
    "000005": "reply",
    "000006": "flaky",
}
DEFAULTS: dict[str, Any] = {"report_delay": 1.0, "read_delay": 2.0, "reply_delay": 3.0}


class SandboxAdapter:
    name = "sandbox"
    channels: tuple[str, ...] = ("sms", "viber", "vk", "telegram", "email")

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        out = dict(DEFAULTS)
        for key, value in settings.items():
            if key in DEFAULTS:
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{key} must be a number of seconds >= 0")
                if value > 86400:
                    raise ValueError(f"{key} must be at most 86400 seconds")
                out[key] = float(value)
            elif key == "outcome":
                if value is not None and value not in OUTCOMES:
                    raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
                out[key] = value
            else:
                raise ValueError(f"unknown sandbox setting {key!r}")
        return out

    def send(self, message: Outbound) -> SendResult:
        settings = {**DEFAULTS, **message.settings}
        outcome, code = self._outcome(message, settings.get("outcome"))
        if outcome == "flaky":
            if message.try_number == 1:
                raise RetriableError("sandbox provider temporarily unavailable", delay=0.5)
            outcome = "delivered"
        if outcome == "rejected":
            raise PermanentError("Message is rejected by the operator", code=1000)
        delay = float(settings["report_delay"])
        events: list[ProviderEvent] = []
        if outcome in ("delivered", "reply"):
            events.append(ProviderEvent("status", delay, status="delivered"))
            if message.channel in READ_CHANNELS:
                events.append(ProviderEvent("status", float(settings["read_delay"]), "read"))
            if outcome == "reply":
                events.append(
                    ProviderEvent(
                        "inbound",
                        float(settings["reply_delay"]),
                        text=f"Reply to: {(message.text or '')[:100]}",
                    )
                )
        elif outcome == "undelivered":
            events.append(ProviderEvent("status", delay, status="undelivered", code=1000))
        elif outcome == "error":
            events.append(
                ProviderEvent("status", delay, status="error", code=code, error="Sandbox error")
            )
        # "silent": no report, the ttl watch expires the step.
        return SendResult("sbx-" + uuid.uuid4().hex, tuple(events))

    @staticmethod
    def _outcome(message: Outbound, forced: str | None) -> tuple[str, int]:
        tail = message.phone[-6:]
        if message.channel == "email":
            # An email's magic is the end of its local part: user000003@example.com.
            tail = str((message.extra or {}).get("email", "")).rpartition("@")[0][-6:]
        if forced:
            return forced, 1000
        if tail.startswith("04"):
            return "error", int(tail[2:])
        return MAGIC.get(tail, "delivered"), 1000


class DeviceSandboxAdapter(SandboxAdapter):
    """A WhatsApp gateway device in the sandbox: the same magic numbers, and a read
    report after delivery, as a phone that opens the chat."""

    name = "wa_sandbox"
    channels: tuple[str, ...] = ("whatsapp",)

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        rest = dict(settings)
        scan = rest.pop("scan_delay", 5.0)
        if not isinstance(scan, int | float) or isinstance(scan, bool) or scan > 86400:
            raise ValueError("scan_delay must be a number of seconds (negative: never)")
        return {**super().validate_settings(rest), "scan_delay": float(scan)}


register(SandboxAdapter())
register(DeviceSandboxAdapter())
