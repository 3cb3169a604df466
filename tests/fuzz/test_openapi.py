"""Schemathesis over every mounted surface, from the OpenAPI document each one serves.

For every operation of /api, /v3, /user, /3.0 and the gateway's root paths, generated
requests (valid and invalid: the coverage and fuzzing phases) go to the in-process app,
and every answer must keep the surface's contract:

- no 5xx, except the HTTP 500 that seeds 003 and 004 prescribe for an API error, and
  never an unhandled exception (the surfaces log one before answering it);
- every answer, errors above all, in the surface's documented shape (``shapes.py``);
- a refused request writes nothing (ARCHITECTURE.md: no partial writes).

Most cases carry the organization's credentials (the rest keep the generated ones), and
half of them real values where the fuzzer put its own (ids, a valid phone number, ...),
so that generated fields get past "not found". The run is deterministic (fixed seed,
derandomized): docs/testing.md says how to rerun one operation and read a failure.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis import Case as _Case
from schemathesis.config import SchemathesisConfig
from sqlalchemy import func, select

import omnirelay.models  # noqa: F401  (every table in Base.metadata)
from omnirelay.app import create_app
from omnirelay.config import Settings
from omnirelay.db import Base, Database
from tests.fuzz import shapes
from tests.fuzz.conftest import World

# Per operation: the fuzzing phase's examples; the coverage phase adds its own boundary and
# invalid cases (most of the run: ~40 an operation). Sized to keep the module near 2
# minutes per engine on a 2-core machine; raise it for a deeper run (docs/testing.md).
MAX_EXAMPLES = int(os.environ.get("OMNIRELAY_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("OMNIRELAY_FUZZ_SEED", "20240801"))
# Tables a refused request may still write: the rate-limit counter commits even when the
# credentials are then refused (seed 000 counts refused calls).
MAY_CHANGE_ON_ERROR = {"rate_limit_counters"}
SURFACE_KEY = "x-omnirelay-surface"
Case = _Case[Any]  # the generic parameter is the operation type


@dataclass(frozen=True)
class Surface:
    name: str
    mount: str
    shape: Callable[[int, Any], list[str]]
    # Seeds 003 and 004 answer an API error with HTTP 500: there a 500 is a refusal as long
    # as it is in shape and no exception escaped.
    error_500: bool
    # Real values put into the path: (operation path prefix, parameter, key of World.real).
    path_values: tuple[tuple[str, str, str], ...] = ()
    # Real values put into body fields, wherever they are: (field, key of World.real).
    body_values: tuple[tuple[str, str], ...] = ()
    openapi: str = ""  # where the document is, when not at {mount}/openapi.json

    def credentials(self, world: World, path: str) -> dict[str, str]:
        if self.name == "admin":
            return world.org.headers()
        if self.name == "callback":
            return {"Authorization": world.basic}
        if self.name == "gateway":  # seed 002: the account token for these two only
            account = path in ("/get-devices", "/add-device")
            return {"Authorization": world.account_token if account else world.device_token}
        return world.org.token


SURFACES = {
    s.name: s
    for s in (
        Surface(
            "admin",
            "/api",
            shapes.admin,
            error_500=False,
            path_values=(
                ("/users/", "user_id", "user"),
                ("/jobs/", "job_id", "job"),
                ("/connections/", "connection_id", "connection"),
                ("/messages/", "message_id", "message"),
                ("/templates/", "template_id", "template"),
                ("/billing/prices/", "channel", "channel"),
                ("/callbacks/profiles/", "sid", "profile"),
                ("/callbacks/agents/", "sid", "agent"),
                ("/callbacks/options/", "osid", "option"),
                ("/gateway/devices/", "device_id", "device"),
            ),
        ),
        Surface(
            "notify",
            "/v3",
            shapes.notify,
            error_500=False,
            body_values=(
                ("phone", "phone"),
                ("sender", "sender"),
                ("group", "group"),
                ("report", "url"),
                ("reply", "url"),
                ("id", "template"),
            ),
        ),
        Surface(
            "platform",
            "/user",
            shapes.platform,
            error_500=True,
            path_values=(("/media/store/", "slot", "slot"),),
            body_values=(
                ("callbackUrl", "url"),
                ("token", "slot_token"),
                ("Content-Type", "slot_type"),
                ("contactId", "contact"),
                ("id", "contact"),
                ("dealId", "deal"),
                ("attributeId", "attribute"),
                ("phone", "phone"),
                ("templateId", "template2"),
                ("templateGroupId", "template_group"),
            ),
        ),
        Surface(
            "callback",
            "/3.0",
            shapes.callback,
            error_500=True,
            path_values=(
                ("/profile/", "sid", "profile"),
                ("/call", "sid", "call"),  # /call/{sid}, /callback/{sid}/...
                ("/profile/", "osid", "option"),
                ("/profile/", "qsid", "question"),
            ),
            body_values=(("fc_number", "phone"), ("fc_option", "option")),
        ),
        Surface(
            "gateway",
            "",
            shapes.gateway,
            error_500=False,
            openapi="/gateway/openapi.json",
            body_values=(
                ("target", "phone"),
                ("url", "url"),
                ("webhook", "url"),
                ("webhookstatus", "url"),
            ),
        ),
    )
}


def _schemas() -> dict[str, schemathesis.BaseSchema]:
    """Each surface's document as clients get it. It does not depend on the database, so
    it is read once, at collection, from an app that never opens its (in-memory) one."""
    app = create_app(Settings(database_url="sqlite://"))
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",  # nothing from earlier runs: the same cases every time
            },
            # Two methods an operation does not have are enough to see its 405 in shape.
            "phases": {"coverage": {"unexpected-methods": ["DELETE", "PATCH"]}},
            "suppress-health-check": ["all"],  # a slow, stateful app on purpose
        }
    )
    client = TestClient(app)  # no lifespan: nothing is started
    schemas: dict[str, schemathesis.BaseSchema] = {}
    for name, surface in SURFACES.items():
        document = client.get(surface.openapi or f"{surface.mount}/openapi.json").json()
        document[SURFACE_KEY] = name  # an extension field: which surface a case is for
        schemas[name] = schemathesis.openapi.from_dict(document, config=config)
    return schemas


def _surface(case: Case) -> Surface:
    return SURFACES[case.operation.schema.raw_schema[SURFACE_KEY]]


def _stable(case: Case) -> int:
    """A number fixed by what was generated, so that a replayed example (Hypothesis replays
    a failure to report it) makes the same choices below."""
    generated = (case.method, case.path, case.path_parameters, case.query, case.body)
    # Not repr(): an absent body is an object whose repr is its address.
    text = json.dumps(generated, default=lambda o: f"<{type(o).__name__}>")
    return zlib.crc32(text.encode())


def _use_real_values(case: Case, surface: Surface, world: World) -> None:
    """Real ids, a valid phone number, a registered sender, ... where the fuzzer put its
    own: the other fields then reach the code behind "not found" and "Tel.number error"."""
    for prefix, name, key in surface.path_values:
        if case.path.startswith(prefix) and name in (case.path_parameters or {}):
            case.path_parameters[name] = world.real[key]
    fields = {name: world.real[key] for name, key in surface.body_values}

    def put(node: Any) -> None:
        if isinstance(node, dict):
            for name in node:
                if name in fields:
                    node[name] = fields[name]
                else:
                    put(node[name])
        elif isinstance(node, list):
            for item in node:
                put(item)

    put(case.body)
    put(case.query)  # GET /send takes its fields in the query


def _request(client: TestClient, kwargs: dict[str, Any]) -> httpx.Response:
    """Send schemathesis' requests-style arguments through the suite's TestClient (whose
    lifespan runs the app as in every other test)."""
    send: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": dict(kwargs["headers"]),
        "params": kwargs.get("params"),
    }
    if "json" in kwargs:
        send["json"] = kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, str | bytes):
        send["content"] = data
    elif data is not None:
        send["data"] = data
    if kwargs.get("files"):
        send["files"] = [_part(name, spec) for name, spec in kwargs["files"]]
    response: httpx.Response = client.request(**send)
    return response


def _part(name: str, spec: Any) -> tuple[str, Any]:
    """A multipart part as httpx takes it: requests also sends a bare number, httpx wants
    text or bytes."""
    if isinstance(spec, tuple):
        filename, content, *rest = spec
        if isinstance(content, int | float):
            content = str(content)
        return name, (filename, content, *rest)
    return name, str(spec) if isinstance(spec, int | float) else spec


def _fingerprint(db: Database) -> tuple[int, ...]:
    """Rows per table and the balances: what a refused request must leave as it was."""
    counts = [
        select(func.count()).select_from(t).scalar_subquery()
        for t in Base.metadata.sorted_tables
        if t.name not in MAY_CHANGE_ON_ERROR
    ]
    balances = Base.metadata.tables["balances"]
    total = select(func.coalesce(func.sum(balances.c.amount), 0)).scalar_subquery()
    with db.engine.connect() as conn:
        return tuple(conn.execute(select(*counts, total)).one())


def _learn(case: Case, response: httpx.Response, world: World) -> None:
    """Keep the credentials working when the fuzzer rotates them."""
    if response.status_code != 200:
        return
    if case.path == "/subscription/keys/{slot}/regenerate":
        world.org.subscription_keys[case.path_parameters["slot"]] = response.json()["key"]
    elif case.path == "/callbacks/credentials/regenerate":
        world.auth_token = response.json()["auth_token"]
    elif case.path == "/gateway/account-token":
        world.account_token = response.json()["token"]


# Each operation is fuzzed on one engine (about half on each): the crash classes only one
# engine has (PostgreSQL's NUL bytes and VARCHAR lengths, SQLite's integer overflow) are
# also covered on both engines by tests/api/test_errors.py and tests/security.
@pytest.mark.spread_engines
@schemathesis.pytest.parametrize(**_schemas())
def test_openapi(
    case: Case,
    world: World,
    client: TestClient,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    surface = _surface(case)
    choice = _stable(case)
    # A copy to change: Hypothesis may pass the same case again (to replay a failure).
    sent = case.derive()
    sent.body = copy.deepcopy(case.body)
    headers: dict[str, str] = {}
    if choice % 5:  # four in five as the organization; the rest with generated credentials
        headers = surface.credentials(world, case.path)
        sent.headers.pop("impersonatedUserExternalId", None)
    if choice % 2:  # half of them with real values of the organization
        _use_real_values(sent, surface, world)
    kwargs = sent.as_transport_kwargs(base_url=f"http://testserver{surface.mount}", headers=headers)

    before = _fingerprint(db)
    caplog.clear()
    response = _request(client, kwargs)
    _learn(sent, response, world)

    try:
        body = response.json()
    except ValueError:
        body = None
    status = response.status_code
    problems = []
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    if crashes:
        problems.append(f"logged an error: {crashes[0].getMessage()}")
    if status >= 500 and not (surface.error_500 and status == 500):
        problems.append(f"HTTP {status}")
    if status != 204:
        problems += surface.shape(status, body)
    # Seed 002 refuses with HTTP 200 and ``status: false``: a refusal all the same.
    refused = status >= 400 or (surface.name == "gateway" and _false(body))
    if refused and _fingerprint(db) != before:
        problems.append("a refused request changed the database")
    assert not problems, _report(sent, kwargs, response, problems)


def _false(body: Any) -> bool:
    return isinstance(body, dict) and body.get("status") is False


def _report(
    case: Case, kwargs: dict[str, Any], response: httpx.Response, problems: list[str]
) -> str:
    sent = {k: kwargs.get(k) for k in ("params", "json", "data") if kwargs.get(k) is not None}
    return "\n".join(
        [
            f"{case.method} {kwargs['url']}: " + "; ".join(problems),
            f"sent: {json.dumps(sent, default=repr)[:2000]}",
            f"headers: {dict(kwargs['headers'])}",
            f"answer: HTTP {response.status_code} {response.text[:2000]}",
        ]
    )
