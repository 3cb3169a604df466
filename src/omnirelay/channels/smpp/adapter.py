"""The ``smpp`` provider of the ``sms`` channel. Messages are not sent from a job: the
connection's session owner (``omnirelay.smpp``) submits them over its bound session."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from omnirelay.channels.base import Outbound, SendResult, register
from omnirelay.channels.smpp.config import SmppConfig


class SmppAdapter:
    name = "smpp"
    channels: tuple[str, ...] = ("sms",)
    session_based = True

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return asdict(SmppConfig.from_settings(settings))

    def send(self, message: Outbound) -> SendResult:
        raise RuntimeError("smpp messages are submitted by the connection's session owner")


register(SmppAdapter())
