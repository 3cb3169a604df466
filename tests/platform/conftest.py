"""Fixtures of the /user surface tests: media kept in the test's own folder, and a
caller of the surface's POST methods."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from omnirelay.config import Settings
from tests.conftest import Org

UserCall = Callable[..., httpx.Response]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        media_dir=str(tmp_path / "media"),
    )


@pytest.fixture
def user(client: TestClient, org: Org) -> UserCall:
    """POST /user/<path> as ``org`` (or as ``as_org``)."""

    def call(path: str, body: Any = None, *, as_org: Org | None = None) -> httpx.Response:
        return client.post(f"/user/{path}", json=body, headers=(as_org or org).token)

    return call
