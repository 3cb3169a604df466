from __future__ import annotations

from alembic import context

import omnirelay.models  # noqa: F401  (registers every table on Base.metadata)
from omnirelay.db import Base, create_db_engine

url = context.config.get_main_option("sqlalchemy.url")
assert url
engine = create_db_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
