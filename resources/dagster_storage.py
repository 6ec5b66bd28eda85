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

from resources.settings import setting
from resources.warehouse import DatabaseUrls, WarehouseError, resolve_database_urls


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


class WarehouseDagsterStorage(DagsterPostgresStorage):
    """dagster-postgres storage whose URL is resolved like the warehouse's, when loaded."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: Any, config_value: Any
    ) -> WarehouseDagsterStorage:
        return cls(postgres_url=dagster_storage_url(), inst_data=inst_data)
