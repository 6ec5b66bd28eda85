"""A run whose worker is killed (kill -9) is marked failed by run monitoring, and the queue moves on.

The daemon runs with the project's dagster.yaml (run monitoring on, QueuedRunCoordinator) with two
changes that make the test quick: one run at a time, and a 5 s monitoring poll. Without
`run_monitoring`, the killed run stays STARTED forever and the next run waits in the queue.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from resources.warehouse import PROJECT_ROOT, DatabaseUrls

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent

CODE = """
import time
from dagster import Definitions, job, op

@op
def wait_long() -> None:
    time.sleep(900)

@op
def quick() -> None:
    pass

@job
def sleepy_job() -> None:
    wait_long()

@job
def quick_job() -> None:
    quick()

defs = Definitions(jobs=[sleepy_job, quick_job])
"""


def _wait(what: str, check: Callable[[], object], timeout: float, log: Path) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{log.read_text()[-4000:]}")


@pytest.fixture
def daemon(
    database: DatabaseUrls, tmp_path: Path
) -> Iterator[tuple[dict[str, str], Path, Path, int]]:
    home = tmp_path / "home"
    home.mkdir()
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    config["run_coordinator"]["config"]["max_concurrent_runs"] = 1
    config["run_monitoring"]["poll_interval_seconds"] = 5
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "sleepy.py").write_text(textwrap.dedent(CODE))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump({"load_from": [{"python_file": {"relative_path": "sleepy.py"}}]})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env.update(
        DATABASE_URL=database.libpq,
        DAGSTER_PG_URL=database.dagster,
        DAGSTER_HOME=str(home),
        PYTHONPATH=str(PROJECT_ROOT),  # dagster.yaml's storage class lives in the project
    )
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield env, tmp_path, log, process.pid  # its own session: the session id is its pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in session_processes(process.pid):  # its code server and what that started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _launch(env: dict[str, str], folder: Path, job: str) -> None:
    subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-f", "sleepy.py", "-j", job],
        env=env,
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=300,
    )


def session_processes(session: int) -> dict[int, str]:
    """Processes of a session (pid -> command line), read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(bytes(1), b" ").decode()
        except OSError:
            continue
        # after "(comm)": state, ppid, pgrp, session, ...
        if int(stat.rsplit(")", 1)[1].split()[3]) == session:
            found[int(entry.name)] = cmdline
    return found


def run_workers(session: int) -> list[int]:
    """The run worker processes the daemon's code server started (multiprocessing children)."""
    return [pid for pid, cmd in session_processes(session).items() if "spawn_main" in cmd]


def test_a_killed_run_worker_is_failed_and_the_queue_moves_on(
    daemon: tuple[dict[str, str], Path, Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, folder, log, daemon_sid = daemon
    for name in ("DAGSTER_PG_URL", "DATABASE_URL", "DAGSTER_HOME"):
        monkeypatch.setenv(name, env[name])
    instance = DagsterInstance.from_config(env["DAGSTER_HOME"])

    def status_of(job: str) -> DagsterRunStatus | None:
        runs = instance.get_runs(RunsFilter(job_name=job), limit=1)
        return runs[0].status if runs else None

    _launch(env, folder, "sleepy_job")
    _wait(
        "the sleepy run to start",
        lambda: status_of("sleepy_job") == DagsterRunStatus.STARTED,
        240,
        log,
    )
    workers = run_workers(daemon_sid)
    assert workers, (
        "no process runs the sleepy run:\n"
        + subprocess.run(["ps", "-eo", "pid,ppid,sid,args"], capture_output=True, text=True).stdout[
            -6000:
        ]
    )
    for pid in workers:
        os.kill(pid, signal.SIGKILL)

    _launch(env, folder, "quick_job")  # queued behind the dead run (one run at a time)
    _wait(
        "run monitoring to fail the killed run",
        lambda: status_of("sleepy_job") == DagsterRunStatus.FAILURE,
        240,
        log,
    )
    _wait(
        "the queued run to run",
        lambda: status_of("quick_job") == DagsterRunStatus.SUCCESS,
        240,
        log,
    )
