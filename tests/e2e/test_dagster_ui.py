"""End to end through the UI: `fishnet dev` (webserver + daemon, as the README starts it) on
PostgreSQL, an asset materialised the way the UI's Materialize button asks for it (the webserver's
GraphQL API, through dagster-graphql's client), and a run started by a sensor the daemon ticks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from resources.warehouse import PROJECT_ROOT, DatabaseUrls

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
LOCATION = "fishnet"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(what: str, check: Callable[[], object], timeout: float, log: Path) -> object:
    """Poll ``check`` until it returns something truthy; fail with the server log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{log.read_text()[-4000:]}")


def _location_loaded(url: str) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    try:
        answer = httpx.post(f"{url}/graphql", json={"query": query}, timeout=10).json()
    except httpx.HTTPError:
        return False
    entries = answer["data"]["workspaceOrError"]["locationEntries"]
    return any(e["name"] == LOCATION and e["loadStatus"] == "LOADED" for e in entries)


@pytest.fixture
def dagster_dev(
    dagster_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[DagsterGraphQLClient, Path]]:
    """`fishnet dev` on a free port until the code location is loaded; stopped afterwards."""
    port = _free_port()
    log = tmp_path / "dagster_dev.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "fishnet"), "dev", "--", "-h", "127.0.0.1", "-p", str(port)],
            env=dagster_env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(
            "the code location to load in the webserver",
            lambda: process.poll() is not None or _location_loaded(url),
            180,
            log,
        )
        assert process.poll() is None, log.read_text()[-4000:]
        yield DagsterGraphQLClient("127.0.0.1", port_number=port), log
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # dagster dev stops its webserver and daemon
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


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
    status = _wait_for(
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

    _wait_for("the sensor-triggered ingestion", ingested, 240, log)
