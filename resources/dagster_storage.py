"""Dagster's own run/event/schedule storage, in the warehouse's PostgreSQL server.

`dagster.yaml` names this class so that every Dagster process (webserver, daemon, `dagster job
execute`, `dg check defs` from the repository root) finds the same server the warehouse uses
without `eval "$(fishnet env)"` first: DAGSTER_PG_URL when set, else the warehouse's URL
(DATABASE_URL, else the embedded server, started on demand), spelled for psycopg2 (see PITFALLS:
SQLAlchemy 2.1 + psycopg 3 break dagster-postgres' NOTIFY).
"""

from __future__ import annotations

from typing import Any

from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import DagsterPostgresException

from resources.settings import setting
from resources.warehouse import (
    DatabaseUrls,
    WarehouseError,
    embedded_data_dir,
    resolve_database_urls,
    state_dir,
)


def dagster_storage_url() -> str:
    """DAGSTER_PG_URL, else the warehouse server (starting the embedded one if needed)."""
    explicit = setting("DAGSTER_PG_URL")
    if explicit:
        return DatabaseUrls.parse(explicit).dagster
    try:
        return resolve_database_urls().dagster
    except WarehouseError as exc:
        raise WarehouseError(
            f"Dagster's storage lives in the warehouse PostgreSQL, which is not reachable: {exc}. "
            "Set DATABASE_URL to a PostgreSQL server, or leave it unset to use the embedded "
            "server (`fishnet db start`)."
        ) from exc


def storage_unreachable_message(url: str, problem: str) -> str:
    """What to tell the user of any Dagster command when its storage server cannot be reached."""
    pgdata = embedded_data_dir(url)
    if pgdata is None:
        safe = DatabaseUrls.parse(url).url.render_as_string(hide_password=True)
        return (
            f"Dagster's storage, the PostgreSQL at {safe}, is not reachable ({problem}). "
            "Start that server, or point DAGSTER_PG_URL / DATABASE_URL at a running one."
        )
    recover = "`fishnet db start`"
    if pgdata != state_dir() / "pgdata":
        recover = f"`FISHNET_STATE_DIR={pgdata.parent} fishnet db start`"
    return (
        f"The embedded PostgreSQL at {pgdata} is not running ({problem}). Dagster's runs and the "
        f"warehouse live there; committed runs and data are kept: {recover} starts it again, "
        "then re-run the command."
    )


class WarehouseDagsterStorage(DagsterPostgresStorage):
    """dagster-postgres storage whose URL is resolved like the warehouse's, when loaded.

    When the server is down, every Dagster command (`dagster job execute`, `dagster dev`, the
    daemon) fails with a `WarehouseError` saying so and how to recover, instead of
    dagster-postgres' "too many retries for DB connection".
    """

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: Any, config_value: Any
    ) -> WarehouseDagsterStorage:
        url = dagster_storage_url()
        pgdata = embedded_data_dir(url)
        if pgdata is not None and not (pgdata / "postmaster.pid").exists():
            # cleanly stopped: say so now rather than after dagster-postgres' retries (a server
            # killed with kill -9 leaves its pid file: then after the retries, below)
            raise WarehouseError(storage_unreachable_message(url, "no server on its socket"))
        try:
            return cls(postgres_url=url, inst_data=inst_data)
        except DagsterPostgresException as exc:
            cause = exc.__cause__ or exc
            problem = str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause)
            raise WarehouseError(storage_unreachable_message(url, problem)) from None
