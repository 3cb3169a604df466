"""The migrations build exactly the tables, columns and indexes the models declare, on
both engines: a model change without its migration fails here, not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import omnirelay.models  # noqa: F401  (every domain's tables on the metadata)
from omnirelay.db import Base, Database


def test_migrations_match_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
