"""Settings of an ``smpp`` connection (``POST /api/connections``), checked when stored."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

BIND_MODES = ("transceiver", "transmitter_receiver")
CONCAT = ("udh8", "udh16", "sar")


@dataclass(frozen=True)
class SmppConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    bind: str = "transceiver"
    source_ton: int = 5  # alphanumeric sender IDs; numeric senders use 1
    source_npi: int = 0
    dest_ton: int = 1
    dest_npi: int = 1
    window: int = 10
    throughput: float = 0.0  # submit_sm per second; 0 = as fast as the window allows
    concat: str = "udh8"
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    reconnect_max: float = 60.0
    throttle_pause: float = 1.0
    max_tries: int = 5

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> SmppConfig:
        known = {f.name: f for f in fields(cls)}
        for key in settings:
            if key not in known:
                raise ValueError(f"unknown smpp setting {key!r}")
        for key in ("host", "port", "system_id", "password"):
            if settings.get(key) in (None, ""):
                raise ValueError(f"smpp setting {key!r} is required")
        values: dict[str, Any] = {}
        for name, value in settings.items():
            kind = known[name].type
            try:
                if kind in ("int", int):
                    values[name] = int(value)
                elif kind in ("float", float):
                    values[name] = float(value)
                else:
                    values[name] = str(value)
            except (TypeError, ValueError):
                raise ValueError(f"smpp setting {name!r} has the wrong type") from None
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError("port must be 1..65535")
        if len(self.system_id) > 15 or len(self.password) > 8:
            raise ValueError("system_id is at most 15 characters and password at most 8")
        if self.bind not in BIND_MODES:
            raise ValueError(f"bind must be one of {', '.join(BIND_MODES)}")
        if self.concat not in CONCAT:
            raise ValueError(f"concat must be one of {', '.join(CONCAT)}")
        if not 1 <= self.window <= 1000:
            raise ValueError("window must be 1..1000")
        if self.throughput < 0 or self.response_timeout <= 0 or self.enquire_link_interval <= 0:
            raise ValueError("throughput >= 0, response_timeout and enquire_link_interval > 0")
        if not 0 <= self.source_ton <= 6 or not 0 <= self.source_npi <= 18:
            raise ValueError("source_ton 0..6, source_npi 0..18")
