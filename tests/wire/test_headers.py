"""Issue 17.1: every answer of every surface, errors included, carries canonical header
names. Read as raw bytes from a real ``omnirelay serve`` (TestClient normalises names)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Org


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def _head(answer: bytes) -> tuple[int, list[bytes]]:
    head = answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    return int(head[0].split()[1]), [line.split(b":", 1)[0] for line in head[1:]]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    env = {
        **os.environ,
        "OMNIRELAY_DATABASE_URL": database_url,
        "OMNIRELAY_RATE_LIMIT_REQUESTS": "3",
        "OMNIRELAY_MEDIA_DIR": str(tmp_path / "media"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "omnirelay", "serve", "--port", str(port), "--no-workers"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if b"200 OK" in _raw(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")[:20]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("omnirelay serve did not start")
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode()


def _post(path: str, body: str, *headers: str) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: test",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body.encode())}",
        *headers,
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


def test_every_surface_sends_canonical_names(server: int, make_org: Callable[..., Org]) -> None:
    org = make_org()
    token = f"Authorization: Token {org.api_token}"
    key = f"Ocp-Apim-Subscription-Key: {org.subscription_keys['primary']}"
    cases: list[tuple[bytes, int]] = [
        (_get("/healthz"), 200),
        (_post("/v3/balance", "{}", token), 200),
        (_post("/v3/balance", "{}"), 401),  # an error answer
        (_post("/v3/message/sendSMS", "{}", token), 400),
        (_get("/v3/nothing-here"), 404),
        (_get("/api/me", key, f"Authorization: {org.access_token}"), 200),
        (_get("/api/me"), 401),
        (_get("/3.0/profiles"), 401),  # WWW-Authenticate
        (_post("/device", "{}"), 200),  # the gateway's refusal
        (_get("/no-such-path"), 404),
        (_post("/user/callback/set", "{}"), 500),  # seed 004: errors are HTTP 500
    ]
    seen: set[bytes] = set()
    for request, status in cases:
        code, names = _head(_raw(server, request))
        assert code == status, (request, code)
        for name in names:
            assert name == b"-".join(w[:1].upper() + w[1:] for w in name.split(b"-")) or name in (
                b"WWW-Authenticate",
                b"X-RateLimit-Limit",
                b"X-RateLimit-Remaining",
            ), (
                request,
                name,
            )
        seen.update(names)
    assert {b"Content-Type", b"Content-Length", b"Date", b"WWW-Authenticate"} <= seen
    assert {b"X-RateLimit-Limit", b"X-RateLimit-Remaining"} <= seen
    assert b"date" not in seen and b"server" not in seen


def test_rate_limited_answer_has_retry_after(server: int, make_org: Callable[..., Org]) -> None:
    org = make_org()
    request = _get(
        "/api/me",
        f"Ocp-Apim-Subscription-Key: {org.subscription_keys['primary']}",
        f"Authorization: {org.access_token}",
    )
    names: list[bytes] = []
    for _ in range(4):  # the limit is 3 per window
        code, names = _head(_raw(server, request))
    assert code == 429
    assert b"Retry-After" in names and b"Content-Type" in names
