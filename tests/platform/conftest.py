"""Fixtures of the /user surface tests: media kept in the test's own folder, and a
caller of the surface's POST methods."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from omnirelay.config import Settings
from tests.conftest import Org

UserCall = Callable[..., httpx.Response]


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The suite's settings, with media kept in the test's own folder."""
    return settings.model_copy(update={"media_dir": str(tmp_path / "media")})


@pytest.fixture
def user(client: TestClient, org: Org) -> UserCall:
    """POST /user/<path> as ``org`` (or as ``as_org``)."""

    def call(path: str, body: Any = None, *, as_org: Org | None = None) -> httpx.Response:
        return client.post(f"/user/{path}", json=body, headers=(as_org or org).token)

    return call


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str = "omnirelay-test"
    secret_key: str = "omnirelay-test-secret"
    region: str = "us-east-1"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server (moto in server mode) on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    """A fresh bucket per test (the server lives for the session)."""
    import boto3

    name = f"media-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        region_name=s3_server.region,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
    ).create_bucket(Bucket=name)
    return name


Call = Callable[..., Any]


@pytest.fixture
def call(client: TestClient, org: Org) -> Call:
    """``call(path, body)`` -> the body of a success (asserted); ``error=True`` -> the
    body of a refusal (asserted HTTP 500, result error)."""

    def do(path: str, body: Any = None, *, error: bool = False, who: Org | None = None) -> Any:
        r = client.post(f"/user{path}", json=body, headers=(who or org).token)
        payload = r.json()
        if error:
            assert r.status_code == 500, r.text
            assert payload["result"] == "error", payload
        else:
            assert r.status_code == 200, r.text
            assert payload["result"] == "success", payload
        return payload

    return do
