"""Test harness: every database test runs on SQLite and on a real PostgreSQL.

``OMNIRELAY_TEST_ENGINES`` (default ``sqlite,postgresql``) picks the engines. The
PostgreSQL server is started once per session on a free loopback port and each test
gets a fresh database cloned from a migrated template; each SQLite test gets a copy
of a migrated template file.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from omnirelay.db import Database
from omnirelay.migrate import upgrade
from omnirelay.testing.postgres import PostgresServer

ENGINES = [e.strip() for e in os.environ.get("OMNIRELAY_TEST_ENGINES", "sqlite,postgresql").split(",") if e.strip()]
_counter = itertools.count()


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
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"test_{os.getpid()}_{next(_counter)}"
    admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE omnirelay_template"))
    try:
        yield server.url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        database.dispose()
