"""Alembic environment: online migrations only, serialised by an advisory lock."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

# Any constant works; it only has to be the same for every process migrating this database.
MIGRATION_LOCK_ID = 0x66697368  # "fish"
# dagster-postgres keeps its own Alembic revision in public.alembic_version of the same database:
# ours lives in the `ops` schema so the two never read each other's revision.
VERSION_TABLE_SCHEMA = "ops"


def run_migrations_online() -> None:
    url = context.config.attributes.get("sqlalchemy_url")
    if not url:
        from resources.warehouse import resolve_database_urls

        url = resolve_database_urls().sqlalchemy
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_TABLE_SCHEMA}"))
        connection.commit()
        try:
            context.configure(
                connection=connection,
                transaction_per_migration=True,
                version_table_schema=VERSION_TABLE_SCHEMA,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: run `fishnet migrate`")
run_migrations_online()
