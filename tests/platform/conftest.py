"""Helpers of the /user surface tests: a call that returns status and body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Org

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
