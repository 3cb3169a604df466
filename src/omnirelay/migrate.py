"""Schema migrations (Alembic), run by ``omnirelay migrate`` and at start-up of ``make run``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from omnirelay.db import normalize_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolates '%', which URL-encoded passwords may contain.
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
