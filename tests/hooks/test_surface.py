"""The /hooks surface itself: its own error shape, before any provider route exists."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_unknown_hook_path_is_a_404_in_the_surface_shape(client: TestClient) -> None:
    answer = client.post("/hooks/nosuch/1", content=b"{}")
    assert answer.status_code == 404
    assert answer.json() == {"ok": False, "error": "Not Found"}


def test_a_body_over_the_limit_is_refused_before_it_is_read(client: TestClient) -> None:
    limit = client.app.state.ctx.settings.max_body_bytes  # type: ignore[attr-defined]
    answer = client.post(
        "/hooks/nosuch/1",
        content=b"x" * (limit + 1),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["ok"] is False
