"""The vessel registry source database: Oracle in production, a look-alike Postgres schema locally.

`SourceDatabaseResource` resolves where the registry lives when it is used, never at import:
its `url` field, else `SOURCE_DB_URL`; its `schema_name` field, else `SOURCE_DB_SCHEMA`. With
neither URL, the embedded default is the warehouse database itself (DATABASE_URL, else the
embedded server) with a schema `oracle_source` laid out like the Oracle source, which
`seed_sample_source` fills with the deterministic sample of `registry_stand_in` (it stands in for
an external system, so it creates its own tables; warehouse tables only ever come from migrations).

The resource hands the registry's rows to the reference domain (`platform_assets/reference/
vessels.py` turns them into the `vessels` table); it knows the source's tables and queries
(`registry_tables.py`), not the warehouse's.

Oracle is reached with SQLAlchemy's `oracle+oracledb` dialect in thin mode (no Instant Client):
`oracle+oracledb://user:password@host:1521/?service_name=SERVICE`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field

from resources.registry_stand_in import sample_vessel_rows
from resources.registry_tables import (
    RegistryRows,
    SourceDatabaseError,
    declared_gears_query,
    source_tables,
    vessels_query,
)
from resources.settings import setting
from resources.warehouse import DatabaseUrls, WarehouseResource

if TYPE_CHECKING:
    # SQLAlchemy is imported where the registry is read: not when the definitions are (issue #20).
    import sqlalchemy as sa

log = logging.getLogger(__name__)

URL_ENV = "SOURCE_DB_URL"
SCHEMA_ENV = "SOURCE_DB_SCHEMA"
#: The schema of the warehouse database that stands in for the Oracle registry by default.
EMBEDDED_SCHEMA = "oracle_source"


# Both queries must see one state of the registry. Oracle: a read-only transaction reads as of its
# start. PostgreSQL: READ ONLY alone keeps read committed (one snapshot per statement), so ask for
# REPEATABLE READ too.
_READ_ONLY = {
    "oracle": "SET TRANSACTION READ ONLY",
    "postgresql": "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
}


def read_only_statement(dialect_name: str) -> str:
    """The statement that opens a consistent read-only transaction on this database."""
    try:
        return _READ_ONLY[dialect_name]
    except KeyError:
        raise SourceDatabaseError(
            f"the vessel registry source must be Oracle or PostgreSQL, got {dialect_name!r}"
        ) from None


@dataclass(frozen=True)
class SourceLocation:
    """Where the registry is read from, resolved from the resource's fields and the environment."""

    url: str | None  # None: the embedded default (the warehouse database)
    schema: str | None  # None: the connecting user's default schema

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def vessels_table(self) -> str:
        """The registry's main table, schema-qualified, e.g. `oracle_source.NAVIRES`."""
        name = source_tables(self.schema).vessels.name
        return f"{self.schema}.{name}" if self.schema else name

    def describe(self) -> str:
        """For metadata and errors: the vessels table, and the URL without its password."""
        if self.url is None:
            return self.vessels_table
        from sqlalchemy.engine import make_url

        safe = make_url(self.url).render_as_string(hide_password=True)
        return f"{safe} {self.vessels_table}"


@functools.cache
def _source_engine(url: str) -> sa.Engine:
    import sqlalchemy as sa

    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def _sqlalchemy_url(raw: str) -> str:
    """PostgreSQL URLs get the psycopg 3 driver like the warehouse; others are taken as given."""
    from sqlalchemy.engine import make_url

    url = make_url(raw.replace("postgres://", "postgresql://", 1))
    if url.get_backend_name() == "postgresql":
        return DatabaseUrls.parse(raw).sqlalchemy
    return raw


class SourceDatabaseResource(ConfigurableResource):
    """The vessel registry (Oracle `NAVIRES` tables); see the module docstring for defaults."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. oracle+oracledb://user:pass@host:1521/?service_name=X; "
        f"empty means {URL_ENV}, else the warehouse database's `{EMBEDDED_SCHEMA}` schema.",
    )
    schema_name: str | None = Field(
        default=None,
        description=f"schema (Oracle owner) of the registry tables; empty means {SCHEMA_ENV}, "
        f"else `{EMBEDDED_SCHEMA}` for the embedded default and the user's schema otherwise.",
    )

    def location(self) -> SourceLocation:
        """Resolve the URL and schema now (fields, then environment, then the embedded default)."""
        url = setting(URL_ENV, self.url)
        schema = setting(SCHEMA_ENV, self.schema_name)
        if url is None and schema is None:
            schema = EMBEDDED_SCHEMA
        return SourceLocation(url, schema)

    @property
    def engine(self) -> sa.Engine:
        """A pooled engine on the source, shared per URL within the process."""
        location = self.location()
        if location.url is None:
            return WarehouseResource().engine
        return _source_engine(_sqlalchemy_url(location.url))

    def describe(self) -> str:
        """Where vessels come from, without the password (for metadata and error messages)."""
        return self.location().describe()

    def read_registry(self) -> RegistryRows:
        """Run the vessels and declared gears queries in one read-only transaction.

        Raises `SourceDatabaseError` naming the source table when the registry cannot be read.
        """
        import sqlalchemy as sa

        location = self.location()
        where = location.describe()
        tables = source_tables(location.schema)
        if location.url is None:
            ensure_sample_source(self.engine, location.schema or EMBEDDED_SCHEMA)
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql(read_only_statement(connection.dialect.name))
                vessels = connection.execute(vessels_query(tables)).all()
                gears = connection.execute(declared_gears_query(tables)).all()
                connection.rollback()
        except sa.exc.DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise SourceDatabaseError(
                f"{where}: cannot read the vessel registry: {reason}"
            ) from exc
        log.info("read %d vessels and %d declared gears from %s", len(vessels), len(gears), where)
        return RegistryRows(where, vessels, gears)


def seed_sample_source(engine: sa.Engine, schema: str = EMBEDDED_SCHEMA, n: int = 300) -> int:
    """(Re)create `schema`'s registry tables and fill them with `sample_vessel_rows(n)`.

    One transaction, so readers see either the old or the new sample; running it twice leaves the
    same rows. Returns the number of vessels.
    """
    from sqlalchemy.schema import CreateSchema

    tables = source_tables(schema)
    rows = sample_vessel_rows(n)
    with engine.begin() as connection:
        connection.execute(CreateSchema(schema, if_not_exists=True))
        tables.metadata.drop_all(connection)
        tables.metadata.create_all(connection)
        for table in tables.metadata.sorted_tables:
            if rows[table.name]:
                connection.execute(table.insert(), rows[table.name])
    return len(rows["NAVIRES"])


def ensure_sample_source(engine: sa.Engine, schema: str = EMBEDDED_SCHEMA) -> bool:
    """The embedded default on a fresh database: seed the sample registry if it is not there.

    So `dagster job execute -j reference_job` works on a laptop without `fishnet demo` first.
    Serialised by an advisory lock; True if this call seeded it.
    """
    import sqlalchemy as sa

    with engine.begin() as connection:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        if sa.inspect(connection).has_table("NAVIRES", schema=schema):
            return False
    count = seed_sample_source(engine, schema)
    log.info("seeded the embedded vessel registry %s with %d sample vessels", schema, count)
    return True
