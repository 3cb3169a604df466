"""The webhook methods of /api and the callback-server methods of /user."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from omnirelay.app import create_app
from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.testing.receiver import Receiver, Reply
from omnirelay.webhooks.deliverer import Deliverer
from omnirelay.webhooks.models import WebhookEvent
from tests.conftest import Org
from tests.webhooks.conftest import FAST_SCHEDULE, wait_for


@pytest.fixture
def api(db: Database, database_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, webhook_allowed_networks="127.0.0.0/8")
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def _api_token(db: Database, org: Org) -> str:
    from omnirelay.tenancy import service as tenancy

    with db.transaction() as session:
        return tenancy.regenerate_api_token(session, org.id)


def test_list_detail_and_replay(
    api: TestClient,
    fast_org: Org,
    receiver: Receiver,
    deliverer: Deliverer,
    emit: Callable[..., str],
    event_state: Callable[[str], WebhookEvent],
) -> None:
    receiver.script = lambda r: Reply(500)
    event_id = emit(receiver.url(), {"k": "v"})
    wait_for(lambda: event_state(event_id).status == "failed")
    page = api.get("/api/webhooks/events?status=failed", headers=fast_org.headers()).json()
    assert page["total"] == 1 and page["items"][0]["id"] == event_id
    assert page["items"][0]["lastStatusCode"] == 500
    detail = api.get(f"/api/webhooks/events/{event_id}", headers=fast_org.headers()).json()
    assert detail["payload"] == {"k": "v"}
    log = detail["attemptLog"]
    assert [a["attempt"] for a in log] == list(range(1, len(FAST_SCHEDULE) + 2))
    assert all(a["statusCode"] == 500 and a["durationMs"] >= 0 for a in log)
    assert log[-1]["outcome"] == "failed"

    receiver.script = lambda r: Reply(200)
    r = api.post(f"/api/webhooks/events/{event_id}/replay", headers=fast_org.headers())
    assert r.status_code == 200 and r.json()["status"] == "pending"
    wait_for(lambda: event_state(event_id).status == "delivered")
    ids = {req.headers["webhook-id"] for req in receiver.received()}
    assert ids == {event_id}  # one id across retries and the replay
    r = api.post(f"/api/webhooks/events/{event_id}/replay", headers=fast_org.headers())
    assert r.status_code == 200  # a delivered event may be replayed too
    wait_for(lambda: event_state(event_id).status == "delivered")


def test_replay_all_failed_since(
    api: TestClient,
    fast_org: Org,
    receiver: Receiver,
    deliverer: Deliverer,
    emit: Callable[..., str],
    event_state: Callable[[str], WebhookEvent],
) -> None:
    receiver.script = lambda r: Reply(500)
    ids = [emit(receiver.url(), {"n": n}) for n in range(3)]
    wait_for(lambda: all(event_state(i).status == "failed" for i in ids), timeout=30)
    receiver.script = lambda r: Reply(200)
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    r = api.post("/api/webhooks/replay", headers=fast_org.headers(), json={"since": since})
    assert r.status_code == 200 and r.json() == {"replayed": 3}
    wait_for(lambda: all(event_state(i).status == "delivered" for i in ids))
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    r = api.post("/api/webhooks/replay", headers=fast_org.headers(), json={"since": future})
    assert r.json() == {"replayed": 0}


def test_disabled_endpoint_blocks_replay_until_enabled(
    api: TestClient,
    fast_org: Org,
    receiver: Receiver,
    deliverer: Deliverer,
    emit: Callable[..., str],
    event_state: Callable[[str], WebhookEvent],
) -> None:
    receiver.script = lambda r: Reply(410)
    event_id = emit(receiver.url())
    wait_for(lambda: event_state(event_id).status == "disabled")
    r = api.post(f"/api/webhooks/events/{event_id}/replay", headers=fast_org.headers())
    assert r.status_code == 409 and r.json()["code"] == "endpoint_disabled"
    [endpoint] = api.get("/api/webhooks/endpoints", headers=fast_org.headers()).json()
    assert endpoint["disabledAt"] is not None
    receiver.script = lambda r: Reply(200)
    r = api.post(f"/api/webhooks/endpoints/{endpoint['id']}/enable", headers=fast_org.headers())
    assert r.status_code == 200 and r.json()["disabledAt"] is None
    api.post(f"/api/webhooks/events/{event_id}/replay", headers=fast_org.headers())
    wait_for(lambda: event_state(event_id).status == "delivered")


def test_settings_schedule_and_rotation(api: TestClient, org: Org) -> None:
    got = api.get("/api/webhooks/settings", headers=org.headers()).json()
    assert got["retrySchedule"] == [10, 30, 90, 270, 810, 2430, 3600]  # seed 004
    assert got["signingSecret"].startswith("whsec_")
    r = api.patch("/api/webhooks/settings", headers=org.headers(), json={"retrySchedule": [1, 2]})
    assert r.status_code == 200 and r.json()["retrySchedule"] == [1, 2]
    r = api.patch("/api/webhooks/settings", headers=org.headers(), json={"retrySchedule": [-1]})
    assert r.status_code == 400 and r.json()["code"] == "invalid_schedule"
    rotated = api.post("/api/webhooks/settings/rotate-secret", headers=org.headers()).json()
    assert rotated["signingSecret"] != got["signingSecret"]
    assert rotated["previousSigningSecretExpiresAt"] is not None


def test_tenant_isolation_of_events_and_endpoints(
    api: TestClient,
    fast_org: Org,
    make_org: Callable[..., Org],
    receiver: Receiver,
    emit: Callable[..., str],
    db: Database,
) -> None:
    event_id = emit(receiver.url())
    other = make_org("Other", "admin@other.test")
    h = other.headers()
    assert api.get(f"/api/webhooks/events/{event_id}", headers=h).status_code == 404
    r = api.post(f"/api/webhooks/events/{event_id}/replay", headers=h)
    assert r.status_code == 404 and r.json()["code"] == "event_not_found"
    assert api.get("/api/webhooks/events", headers=h).json()["total"] == 0
    assert api.get("/api/webhooks/endpoints", headers=h).json() == []
    [endpoint] = api.get("/api/webhooks/endpoints", headers=fast_org.headers()).json()
    r = api.post(f"/api/webhooks/endpoints/{endpoint['id']}/enable", headers=h)
    assert r.status_code == 404


def test_user_callback_server_methods(api: TestClient, org: Org, db: Database) -> None:
    token = _api_token(db, org)
    h = {"Authorization": f"Token {token}"}
    r = api.post(
        "/user/callback/set",
        headers=h,
        json={"callbackUrl": "http://127.0.0.1:9/cb", "secret": "some_secret_string"},
    )
    assert r.status_code == 200 and r.json() == {"result": "success"}
    r = api.post("/user/callback/secret", headers=h)
    assert r.json() == {"result": "success", "secret": "some_secret_string"}
    got = api.get("/api/webhooks/settings", headers=org.headers()).json()
    assert got["callbackUrl"] == "http://127.0.0.1:9/cb"


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"callbackUrl": "http://10.1.2.3/cb"}, "unsafe_url"),
        ({"callbackUrl": "http://169.254.169.254/"}, "unsafe_url"),
        ({"callbackUrl": "gopher://127.0.0.1/"}, "unsafe_url"),
        ({"secret": "x"}, "missing_field"),
    ],
)
def test_user_callback_refusals(
    api: TestClient, org: Org, db: Database, body: dict[str, str], code: str
) -> None:
    h = {"Authorization": f"Token {_api_token(db, org)}"}
    r = api.post("/user/callback/set", headers=h, json=body)
    assert r.status_code == 500
    assert r.json()["result"] == "error" and r.json()["code"] == code
    assert api.post("/user/callback/secret", headers=h).json()["secret"] is None


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("content", "code", "desc"),
    [
        (b"", "invalid_body", "The body must be a JSON object"),
        (b"[1]", "invalid_body", "The body must be a JSON object"),
        (b'{"callbackUrl": ', "invalid_json", "The body is not valid JSON"),
        (b'{"callbackUrl": "http://127.0.0.1:9/\\u0000"}', "validation_error", "Invalid argument"),
    ],
)
def test_user_body_refusals(
    api: TestClient, org: Org, db: Database, content: bytes, code: str, desc: str
) -> None:
    # Found by the fuzz tests: these answered desc "None: Field required" and the like
    # (or, for NUL on PostgreSQL, an unhandled database error).
    h = {"Authorization": f"Token {_api_token(db, org)}", "Content-Type": "application/json"}
    r = api.post("/user/callback/set", headers=h, content=content)
    assert r.status_code == 500, r.text
    assert r.json()["result"] == "error" and r.json()["code"] == code
    assert r.json()["desc"].startswith(desc) and "None" not in r.json()["desc"]
    assert api.post("/user/callback/secret", headers=h).json()["secret"] is None


@pytest.mark.one_engine
@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer abc", "Token", "Token 00000000-0000-0000-0000-000000000000"]
)
def test_user_surface_auth(api: TestClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    r = api.post("/user/callback/secret", headers=headers)
    assert r.status_code == 500 and r.json()["result"] == "error"
    assert r.json()["code"] in ("missing_token", "malformed_token", "invalid_token")


def test_user_token_is_per_organization(
    api: TestClient, org: Org, make_org: Callable[..., Org], db: Database
) -> None:
    other = make_org("Other", "admin@other.test")
    mine = {"Authorization": f"Token {_api_token(db, org)}"}
    theirs = {"Authorization": f"Token {_api_token(db, other)}"}
    api.post(
        "/user/callback/set",
        headers=mine,
        json={"callbackUrl": "http://127.0.0.1:9/a", "secret": "A"},
    )
    api.post(
        "/user/callback/set",
        headers=theirs,
        json={"callbackUrl": "http://127.0.0.1:9/b", "secret": "B"},
    )
    assert api.post("/user/callback/secret", headers=mine).json()["secret"] == "A"
    assert api.post("/user/callback/secret", headers=theirs).json()["secret"] == "B"
