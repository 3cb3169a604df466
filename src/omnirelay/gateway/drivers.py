"""Device drivers: how a device gets connected. Sending goes through the device's channel
connection (``channels/``), whose provider is the driver's name; this is the rest of a
device's life, pairing, which only a gateway device has.

- ``wa_sandbox``: a QR (a real PNG) or a pairing code that "scans itself" after the
  connection's ``scan_delay`` seconds (default 5; negative: only the admin API's scan).
- ``whatsapp_cloud``: a WhatsApp Business Cloud API number; connecting checks the
  credentials against the API, no QR.
"""

from __future__ import annotations

import base64
import io
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

import segno


@dataclass(frozen=True)
class PairStart:
    value: str  # base64 PNG of the QR, or the pairing code ("" when none is needed)
    connected_now: bool = False
    scan_after: float | None = None  # seconds until the sandbox phone scans it


class DeviceDriver(Protocol):
    def pair(self, number: str, settings: dict[str, Any], kind: str) -> PairStart: ...

    def registered(self, numbers: list[str], settings: dict[str, Any]) -> list[bool] | None:
        """Which numbers are on WhatsApp; None when the driver cannot tell."""
        ...


NOT_ON_WHATSAPP = "000009"  # sandbox: numbers ending so are not on WhatsApp


class SandboxDriver:
    def pair(self, number: str, settings: dict[str, Any], kind: str) -> PairStart:
        delay = float(settings.get("scan_delay", 5.0))
        after = delay if delay >= 0 else None
        nonce = secrets.token_hex(8)
        if kind == "code":
            letters = secrets.token_hex(4).upper()
            return PairStart(f"{letters[:4]}-{letters[4:]}", scan_after=after)
        buf = io.BytesIO()
        segno.make(f"omnirelay-sandbox:{number}:{nonce}", error="m").save(buf, kind="png", scale=5)
        return PairStart(base64.b64encode(buf.getvalue()).decode(), scan_after=after)

    def registered(self, numbers: list[str], settings: dict[str, Any]) -> list[bool] | None:
        return [not n.endswith(NOT_ON_WHATSAPP) for n in numbers]


class CloudDriver:
    def pair(self, number: str, settings: dict[str, Any], kind: str) -> PairStart:
        from omnirelay.channels.base import get_adapter
        from omnirelay.channels.whatsapp_cloud import CloudAdapter

        adapter = get_adapter("whatsapp_cloud")
        assert isinstance(adapter, CloudAdapter)
        adapter.check(settings)  # raises when the number or token is wrong
        return PairStart("", connected_now=True)

    def registered(self, numbers: list[str], settings: dict[str, Any]) -> list[bool] | None:
        return None  # the Cloud API has no contact check any more


DRIVERS: dict[str, DeviceDriver] = {"wa_sandbox": SandboxDriver(), "whatsapp_cloud": CloudDriver()}


def driver_for(name: str) -> DeviceDriver:
    return DRIVERS[name]
