"""Telephony behind one interface: originate a call to the customer, bridge it to an agent,
hang up. An adapter answers with the events that will follow, each after a delay; the
engine applies them as jobs (as channel adapters' provider events are, ADR 7).

Adapters that speak to a provider over the network (``provider: twilio``,
callbacks/twilio.py) cannot answer inside the engine's transaction: for them the engine
records the intent as a job that runs with no transaction open (callbacks/remote.py),
and the provider's status callbacks become the same events (ADR 33).

The sandbox adapter decides by the last four digits of the customer's number:

    0001 busy    0002 no answer    0003 answers, then hangs up while waiting for an agent
    anything else answers; the conversation with the agent then lasts ``talk_time``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

DEFAULTS: dict[str, float] = {"ring_delay": 5.0, "bridge_delay": 1.0, "talk_time": 60.0}


@dataclass(frozen=True)
class TelephonyEvent:
    kind: str  # answered | busy | no_answer | hangup | connected | completed
    delay: float = 0.0


class Telephony(Protocol):
    def originate(
        self, call_sid: str, number: str, settings: dict[str, Any]
    ) -> list[TelephonyEvent]:
        """Dial the customer; the events say how the customer's leg goes."""
        ...

    def bridge(
        self, call_sid: str, number: str, agent: str, settings: dict[str, Any]
    ) -> list[TelephonyEvent]:
        """Connect the answered customer to an agent; ``connected``, later ``completed``."""
        ...

    def hangup(self, call_sid: str) -> None: ...


class SandboxTelephony:
    def originate(
        self, call_sid: str, number: str, settings: dict[str, Any]
    ) -> list[TelephonyEvent]:
        conf = {**DEFAULTS, **settings}
        ring = float(conf["ring_delay"])
        tail = number[-4:]
        if tail == "0001":
            return [TelephonyEvent("busy", ring)]
        if tail == "0002":
            return [TelephonyEvent("no_answer", ring)]
        if tail == "0003":
            return [TelephonyEvent("answered", ring), TelephonyEvent("hangup", ring + 0.5)]
        return [TelephonyEvent("answered", ring)]

    def bridge(
        self, call_sid: str, number: str, agent: str, settings: dict[str, Any]
    ) -> list[TelephonyEvent]:
        conf = {**DEFAULTS, **settings}
        if number[-4:] == "0003":
            return []  # the customer is gone before the agent is on the line
        bridge = float(conf["bridge_delay"])
        return [
            TelephonyEvent("connected", bridge),
            TelephonyEvent("completed", bridge + float(conf["talk_time"])),
        ]

    def hangup(self, call_sid: str) -> None:
        return None


SANDBOX = "sandbox"


def provider(settings: Mapping[str, Any]) -> str:
    return str(settings.get("provider") or SANDBOX)


def is_remote(settings: Mapping[str, Any]) -> bool:
    """True when the profile's telephony is a provider reached over the network."""
    return provider(settings) != SANDBOX


def shown(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as the admin API shows them: secrets masked."""
    from omnirelay.callbacks import twilio

    return twilio.shown(settings) if provider(settings) == twilio.NAME else dict(settings)


def validate_settings(
    settings: dict[str, Any], previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    from omnirelay.callbacks import twilio

    name = settings.get("provider", SANDBOX)
    if name == twilio.NAME:
        return twilio.validate_settings(settings, previous or {})
    if name != SANDBOX:
        raise ValueError(f"unknown telephony provider {name!r} (sandbox, twilio)")
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "provider":
            continue
        if key not in DEFAULTS:
            raise ValueError(f"unknown telephony setting {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86400:
            raise ValueError(f"{key} must be 0..86400 seconds")
        out[key] = float(value)
    return out


adapter: Telephony = SandboxTelephony()
