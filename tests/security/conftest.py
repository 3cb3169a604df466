"""Fixtures of the security tests: the production default (no private network allowed),
the gateway's and the notifications' fixtures, and a real server on a loopback port for
what only a socket shows (keep-alive after a refusal)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from omnirelay.app import create_app
from omnirelay.config import Settings
from omnirelay.db import Database
from tests.gateway.conftest import (  # noqa: F401  (shared fixtures)
    Account,
    DeviceRef,
    account,
    add_device,
    clock,
    connected,
    gw,
)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        media_dir=str(tmp_path / "media"),
    )


class LiveServer:
    """The app under uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise AssertionError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live(db: Database, settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings, db=db)) as server:
        yield server
