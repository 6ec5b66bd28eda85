"""End to end: a run whose worker is killed with kill -9 is marked FAILED by the daemon's run
monitoring, and the run queued behind it starts (issue #20).

`fishnet dev` (webserver, daemon, code server) on PostgreSQL with the project's dagster.yaml, where
only two knobs are turned so that the test is short: one run at a time (the queue is visible) and
a 2 s monitoring poll. The run worker is killed with everything around it (kill -9 of the process
group: a crash, the OOM killer, a closed terminal): a worker killed alone is reported by the code
server that started it, but here no process is left that could report the run. Only the restarted
daemon's run monitoring can notice, through the launcher's worker health check.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from resources.warehouse import DatabaseUrls
from tests.e2e.services import BIN, LOCATION, free_port, start, stop, wait_for, wait_for_location

pytestmark = pytest.mark.e2e
REPOSITORY = "__repository__"
STARTED = re.compile(r"Started process for run \(pid: (\d+)\)")


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a killed orphan may wait a while for init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


class Dev:
    """`fishnet dev` in its own process group, started and killed on demand."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=self.port)

    def start(self) -> None:
        self.process = start(
            [str(BIN / "fishnet"), "dev", "--", "-h", "127.0.0.1", "-p", str(self.port)],
            self.env,
            self.log,
        )
        wait_for_location(f"http://127.0.0.1:{self.port}", self.process, 240, self.log)

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the whole process group: webserver, daemon, code server and run workers."""
        if self.process is not None:
            stop(self.process, sig)
            self.process = None


@pytest.fixture
def dev(dagster_env: dict[str, str], tmp_path: Path) -> Iterator[Dev]:
    """The project's instance, with one run at a time and a 2 s monitoring poll."""
    config_file = Path(dagster_env["DAGSTER_HOME"]) / "dagster.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["run_coordinator"]["config"]["max_concurrent_runs"] = 1
    config["run_monitoring"]["poll_interval_seconds"] = 2
    config_file.write_text(yaml.safe_dump(config))
    dev = Dev(dagster_env, tmp_path / "dagster_dev.log")
    try:
        yield dev
    finally:
        dev.kill(signal.SIGTERM)  # dagster dev stops its webserver and daemon


def test_a_killed_run_worker_fails_its_run_and_the_queue_moves_on(
    dev: Dev, database: DatabaseUrls
) -> None:
    def status(run_id: str) -> str | None:
        with psycopg.connect(database.libpq) as conn:
            row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        return row[0] if row else None

    def worker_pid(run_id: str) -> int | None:
        with psycopg.connect(database.libpq) as conn:
            rows = conn.execute(
                "SELECT event FROM event_logs WHERE run_id = %s"
                " AND dagster_event_type = 'ENGINE_EVENT' ORDER BY id",
                (run_id,),
            ).fetchall()
        found = [int(m.group(1)) for (event,) in rows if (m := STARTED.search(event))]
        return found[-1] if found else None

    dev.start()
    killed = dev.client.submit_job_execution(
        "reference_job", repository_location_name=LOCATION, repository_name=REPOSITORY
    )
    queued = dev.client.submit_job_execution(
        "__ASSET_JOB",
        repository_location_name=LOCATION,
        repository_name=REPOSITORY,
        asset_selection=[["reference", "species"]],
    )
    wait_for(
        "the first run to start",
        lambda: status(killed) == DagsterRunStatus.STARTED.value,
        240,
        dev.log,
    )
    pid = worker_pid(killed)
    assert pid is not None and Path(f"/proc/{pid}").exists()
    assert status(queued) == DagsterRunStatus.QUEUED.value  # one run at a time

    # The run worker dies with every process that could have reported it (the code server
    # that started it, the daemon): kill -9 of the worker and of the `fishnet dev` process group.
    os.kill(pid, signal.SIGKILL)
    dev.kill()
    wait_for("the worker to die", lambda: not _alive(pid), 30, dev.log)
    assert status(killed) == DagsterRunStatus.STARTED.value  # nobody left to say otherwise

    dev.start()
    wait_for(
        "the killed run to be marked FAILED",
        lambda: status(killed) == DagsterRunStatus.FAILURE.value,
        120,
        dev.log,
    )
    with psycopg.connect(database.libpq) as conn:
        events = conn.execute(
            "SELECT event FROM event_logs WHERE run_id = %s", (killed,)
        ).fetchall()
    assert any(f"run worker process {pid} is gone" in event for (event,) in events)
    wait_for(
        "the queued run to succeed",
        lambda: status(queued) == DagsterRunStatus.SUCCESS.value,
        300,
        dev.log,
    )
