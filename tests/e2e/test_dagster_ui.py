"""End to end through the UI: `fishnet dev` (webserver + daemon, as the README starts it) on
PostgreSQL, an asset materialised the way the UI's Materialize button asks for it (the webserver's
GraphQL API, through dagster-graphql's client), and a run started by a sensor the daemon ticks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from resources.warehouse import DatabaseUrls
from tests.e2e.services import BIN, LOCATION, free_port, start, stop, wait_for, wait_for_location

pytestmark = pytest.mark.e2e
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@pytest.fixture
def dagster_dev(
    dagster_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[DagsterGraphQLClient, Path]]:
    """`fishnet dev` on a free port until the code location is loaded; stopped afterwards."""
    port = free_port()
    log = tmp_path / "dagster_dev.log"
    process = start(
        [str(BIN / "fishnet"), "dev", "--", "-h", "127.0.0.1", "-p", str(port)], dagster_env, log
    )
    try:
        wait_for_location(f"http://127.0.0.1:{port}", process, 180, log)
        yield DagsterGraphQLClient("127.0.0.1", port_number=port), log
    finally:
        stop(process)  # dagster dev stops its webserver and daemon


def test_the_ui_materialises_assets_and_the_daemon_runs_sensors(
    dagster_dev: tuple[DagsterGraphQLClient, Path], database: DatabaseUrls
) -> None:
    client, log = dagster_dev

    # "Materialize" on reference/species: a run of the implicit asset job with that selection.
    run_id = client.submit_job_execution(
        "__ASSET_JOB",
        repository_location_name=LOCATION,
        repository_name="__repository__",
        asset_selection=[["reference", "species"]],
    )
    status = wait_for(
        "the materialisation run to finish",
        lambda: (s := client.get_run_status(run_id)) in FINISHED and s,
        240,
        log,
    )
    assert status == DagsterRunStatus.SUCCESS, log.read_text()[-4000:]
    with psycopg.connect(database.libpq) as conn:
        assert conn.execute("SELECT count(*) FROM reference.species").fetchone()[0] > 100

    # The inbox sensor runs by default: the daemon ticks it, it sees the archive in the inbox and
    # requests a logbook_ingest_job run, which the daemon dequeues and runs.
    def ingested() -> bool:
        with psycopg.connect(database.libpq) as conn:
            runs = conn.execute(
                "SELECT count(*) FROM runs WHERE pipeline_name = 'logbook_ingest_job'"
                " AND status = 'SUCCESS'"
            ).fetchone()[0]
            reports = conn.execute("SELECT count(*) FROM logbook.logbook_reports").fetchone()[0]
        return runs >= 1 and reports == 15

    wait_for("the sensor-triggered ingestion", ingested, 240, log)
