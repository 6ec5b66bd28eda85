"""Alembic migrations of the warehouse schema (one PostgreSQL schema per domain).

`upgrade()` is what `fishnet migrate` runs; it is idempotent and safe to run from several processes
at once (the migration environment takes an advisory lock).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from resources.warehouse import DatabaseUrls

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(urls: DatabaseUrls) -> Config:
    """An Alembic config pointing at this folder and at the given server."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    config.attributes["sqlalchemy_url"] = urls.sqlalchemy
    return config


def upgrade(urls: DatabaseUrls, revision: str = "head") -> None:
    """Bring the warehouse schema to `revision` (default: the latest)."""
    command.upgrade(alembic_config(urls), revision)


def current_revision(urls: DatabaseUrls) -> str | None:
    """The revision the database is at, or None before the first migration."""
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext

    engine = sa.create_engine(urls.sqlalchemy)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(
                conn, opts={"version_table_schema": "ops"}
            ).get_current_revision()
    finally:
        engine.dispose()
