"""The local run launcher's worker health check (resources/run_launcher.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterRun, instance_for_test, job, op

from resources.run_launcher import (
    GRPC_INFO_TAG,
    LocalRunLauncher,
    WorkerRecord,
    launched_here,
    parse_worker_events,
    process_alive,
)

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = {"module": "resources.run_launcher", "class": "LocalRunLauncher", "config": {}}


@op
def noop() -> None:
    pass


@job
def probe_job() -> None:
    noop()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield process
    process.kill()
    process.wait()


def _killed(process: subprocess.Popen[bytes]) -> None:
    """kill -9, and wait until the kernel has delivered it (left unreaped: a zombie)."""
    os.kill(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    stat = Path(f"/proc/{process.pid}/stat")
    while time.monotonic() < deadline:
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.05)
    pytest.fail("the killed process never became a zombie")


def test_parse_worker_events_takes_the_latest_worker_and_its_exit() -> None:
    assert parse_worker_events([]) is None
    assert parse_worker_events([("Starting execution", 1.0)]) is None
    events = [
        ("Started process for run (pid: 11).", 1.0),
        ("Process for run exited (pid: 11).", 2.0),
        ("Started process for run (pid: 12).", 3.0),  # resumed by a new worker
    ]
    assert parse_worker_events(events) == WorkerRecord(12, 3.0, exited=False)
    events.append(("Process for run exited (pid: 99).", 4.0))  # another process's exit
    assert parse_worker_events(events) == WorkerRecord(12, 3.0, exited=False)
    events.append(("Process for run exited (pid: 12).", 5.0))
    assert parse_worker_events(events) == WorkerRecord(12, 3.0, exited=True)


def test_process_alive_sees_kill_9_zombies_and_reused_pids(
    sleeper: subprocess.Popen[bytes],
) -> None:
    now = time.time()
    assert process_alive(sleeper.pid, now)
    # a process that started after the worker's event is another process under a reused pid
    assert not process_alive(sleeper.pid, now - 3600)
    _killed(sleeper)
    assert not process_alive(sleeper.pid, now)  # a zombie its parent has not reaped yet
    sleeper.wait()
    assert not process_alive(sleeper.pid, now)  # gone


def test_launched_here_only_for_a_local_grpc_server() -> None:
    assert launched_here({GRPC_INFO_TAG: json.dumps({"host": "localhost", "port": 4000})})
    assert launched_here({GRPC_INFO_TAG: json.dumps({"host": "x", "socket": "/tmp/s"})})
    assert not launched_here({GRPC_INFO_TAG: json.dumps({"host": "code.example", "port": 1})})
    assert not launched_here({})


def _started_run(instance: object, pid: int | None) -> DagsterRun:
    run = instance.create_run_for_job(probe_job)  # type: ignore[attr-defined]
    instance.add_run_tags(  # type: ignore[attr-defined]
        run.run_id, {GRPC_INFO_TAG: json.dumps({"host": "localhost", "port": 4000})}
    )
    if pid is not None:
        instance.report_engine_event(f"Started process for run (pid: {pid}).", run)  # type: ignore[attr-defined]
    return instance.get_run_by_id(run.run_id)  # type: ignore[attr-defined,no-any-return]


def test_health_check_fails_a_run_whose_worker_was_killed(
    sleeper: subprocess.Popen[bytes],
) -> None:
    with instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, LocalRunLauncher)
        assert launcher.supports_check_run_worker_health

        waiting = launcher.check_run_worker_health(_started_run(instance, None))
        assert waiting.status.value == "RUNNING"  # no worker yet: left to the start timeout

        run = _started_run(instance, sleeper.pid)
        assert launcher.check_run_worker_health(run).status.value == "RUNNING"
        _killed(sleeper)
        health = launcher.check_run_worker_health(run)
        assert health.status.value == "FAILED"
        assert f"run worker process {sleeper.pid} is gone" in (health.msg or "")


def test_the_project_instance_uses_the_local_launcher() -> None:
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert config["run_launcher"] == LAUNCHER
    assert config["run_monitoring"]["enabled"] is True
