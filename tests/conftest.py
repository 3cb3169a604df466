"""Test harness: every database test runs on SQLite and on a real PostgreSQL.

``OMNIRELAY_TEST_ENGINES`` (default ``sqlite,postgresql``) picks the engines. The
PostgreSQL server is started once per session on a free loopback port and each test
gets a database in the migrated template's state (cloned once, emptied after each test:
``omnirelay.testing.pgpool``); each SQLite test gets a copy
of a migrated template file.

A test marked ``one_engine`` refuses or shapes a request before any SQL runs (validation,
wire shapes, URL guards): the engine cannot change its outcome, so it runs on the first
engine only and CI time goes to the tests where the engine matters. A test marked
``spread_engines`` (the fuzz suite: many cases, each a few seconds) runs each case on one
engine, picked by a digest of the case's id: every case runs, each engine gets about half,
and the same ones every run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from omnirelay.app import create_app
from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.migrate import upgrade
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.pgpool import DatabasePool
from omnirelay.testing.postgres import PostgresServer

ENGINES = [
    e.strip()
    for e in os.environ.get("OMNIRELAY_TEST_ENGINES", "sqlite,postgresql").split(",")
    if e.strip()
]


def _engine_of(item: pytest.Item) -> str:
    """The engine a marked test runs on; the item's own for every other test."""
    engine: str = item.callspec.params["database_url"]  # type: ignore[attr-defined]
    if item.get_closest_marker("one_engine"):
        return ENGINES[0]
    if item.get_closest_marker("spread_engines"):
        case = item.nodeid.replace(f"[{engine}]", "")
        return ENGINES[hashlib.sha256(case.encode()).digest()[0] % len(ENGINES)]
    return engine


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("database_url") if callspec is not None else None
        (dropped if engine and engine != _engine_of(item) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE omnirelay_template"))
        admin.dispose()
        upgrade(server.url("omnirelay_template"))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_databases(pg_server: PostgresServer) -> Iterator[DatabasePool]:
    databases = DatabasePool(pg_server.url(), pg_server.url, "omnirelay_template")
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    databases: DatabasePool = request.getfixturevalue("pg_databases")
    name, url = databases.take()
    try:
        yield url
    finally:
        databases.give_back(name)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        database.dispose()


# --- the HTTP app and organizations ------------------------------------------------


@dataclass
class Org:
    id: str
    subscription_keys: dict[str, str]
    access_token: str
    admin_id: str
    api_token: str  # for /v3 and /user

    @property
    def token(self) -> dict[str, str]:
        """``Authorization: Token <key>`` of the /v3 and /user surfaces."""
        return {"Authorization": f"Token {self.api_token}"}

    def headers(self, *, token: str | None = None, key: str | None = None) -> dict[str, str]:
        return {
            "Ocp-Apim-Subscription-Key": key or self.subscription_keys["primary"],
            "Authorization": token or self.access_token,
        }


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Limits high enough that no test meets them unless it means to (tests/security).
    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        rate_limit_anonymous_requests=10_000,
        rate_limit_otp_requests=10_000,
    )


@pytest.fixture
def client(db: Database, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as test_client:
        yield test_client


@pytest.fixture
def make_org(db: Database) -> Callable[..., Org]:
    def make(name: str = "Acme", email: str = "admin@acme.test") -> Org:
        with db.transaction() as session:
            created = tenancy.create_organization(
                session, name, admin_email=email, admin_name="Admin", created_via="cli"
            )
        assert created.admin is not None and created.access_token is not None
        return Org(
            created.organization.id,
            dict(created.subscription_keys),
            created.access_token,
            created.admin.id,
            created.api_token,
        )

    return make


@pytest.fixture
def org(make_org: Callable[..., Org]) -> Org:
    return make_org()
