"""Test databases on a throwaway PostgreSQL, reused instead of cloned for every test.

``CREATE DATABASE … TEMPLATE`` copies the whole catalogue (about 10 MB) and the matching
``DROP`` unlinks it again: on a 2-core machine that was the largest single cost of a
PostgreSQL test. A database of the pool is cloned once, and after each test it is emptied
in one round trip (every table but the migration version, every sequence restarted). A test
that changed the schema itself (created a table, ran a downgrade) leaves a fingerprint that
no longer matches the template's: that database is dropped, never reused.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

from sqlalchemy import Engine, create_engine, pool, text

# One string that names every object of the public schema: relations with their columns
# and types, triggers, functions. Equal fingerprints: the schema the migrations made.
_FINGERPRINT = text(
    """
    SELECT md5(coalesce((
        SELECT string_agg(x, ',' ORDER BY x) FROM (
            SELECT c.relname || ':' || c.relkind::text || ':' || coalesce(a.attname, '')
                   || ':' || coalesce(a.atttypid::text, '') AS x
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
            LEFT JOIN pg_attribute a
                ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        ) AS relations
    ), '') || coalesce((
        SELECT string_agg(t.tgname, ',' ORDER BY t.tgname) FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        WHERE NOT t.tgisinternal
    ), '') || coalesce((
        SELECT string_agg(p.proname, ',' ORDER BY p.proname) FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'public'
    ), '') || coalesce((SELECT string_agg(version_num, ',') FROM alembic_version), ''))
    """
)

# Replica mode skips the foreign-key triggers, so the tables empty in any order.
_EMPTY = text(
    """
DO $$
DECLARE r record;
BEGIN
    SET LOCAL session_replication_role = replica;
    FOR r IN SELECT tablename FROM pg_tables
             WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP
        EXECUTE format('DELETE FROM public.%I', r.tablename);
    END LOOP;
    FOR r IN SELECT c.relname FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
             WHERE c.relkind = 'S' LOOP
        EXECUTE format('ALTER SEQUENCE public.%I RESTART', r.relname);
    END LOOP;
END $$
"""
)

# Connections a test left behind (a killed child's, a leaked engine's) would hold locks.
_KICK = text(
    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


class DatabasePool:
    def __init__(self, server_url: str, url_of: Callable[[str], str], template: str) -> None:
        self._admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        self._url_of = url_of  # database name -> SQLAlchemy URL
        self._template = template
        self._free: list[str] = []
        self._counter = itertools.count()
        self._expected: str | None = None

    def _engine(self, name: str) -> Engine:
        return create_engine(
            self._url_of(name), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
        )

    def _name(self) -> str:
        return f"test_{os.getpid()}_{next(self._counter)}"

    def take(self) -> tuple[str, str]:
        """A database in the template's state: (name, URL)."""
        if self._free:
            name = self._free.pop()
        else:
            name = self._name()
            with self._admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {self._template}"))
            if self._expected is None:
                engine = self._engine(name)
                with engine.connect() as conn:
                    self._expected = conn.execute(_FINGERPRINT).scalar_one()
                engine.dispose()
        return name, self._url_of(name)

    def give_back(self, name: str) -> None:
        """Empty the database for the next test, or drop it if its schema changed. An
        emptied one is renamed: a worker thread or engine a test leaked would otherwise
        reconnect by the old name into the next test's database."""
        engine = self._engine(name)
        try:
            with engine.connect() as conn:
                conn.execute(_KICK)
                same = conn.execute(_FINGERPRINT).scalar_one() == self._expected
                if same:
                    conn.execute(_EMPTY)
        except Exception:  # whatever went wrong, this database is not reused
            same = False
        finally:
            engine.dispose()
        if same:
            fresh = self._name()
            try:
                with self._admin.connect() as conn:
                    conn.execute(text(f"ALTER DATABASE {name} RENAME TO {fresh}"))
            except Exception:  # something connected again in between: not reused
                pass
            else:
                self._free.append(fresh)
                return
        with self._admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    def close(self) -> None:
        self._admin.dispose()
