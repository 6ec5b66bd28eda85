"""The local run launcher, with the worker health check Dagster's run monitoring needs.

Dagster 1.13's `DefaultRunLauncher` starts each run worker as a process of the code location's
gRPC server but cannot say whether that process is still alive, so the daemon's run monitoring
skips STARTED runs: a worker killed by kill -9 or the OOM killer leaves its run STARTED forever,
holding one of `max_concurrent_runs`. `LocalRunLauncher` answers the health check from the
worker's pid, which Dagster records in the run's engine event "Started process for run (pid: N)":
the process must exist, not be a zombie, and have started before that event (else the pid was
reused). dagster.yaml names this class; deploy/dagster.yaml uses the Docker launcher instead.

The worker must run on this machine: the gRPC server has to be local (a Unix socket or a loopback
host), else the check answers "running" and leaves the run to the start/runtime timeouts.

`CheckRunHealthResult` and `WorkerStatus` are not exported by `dagster` in 1.13 although the
launcher API returns them: this module is the one place that imports them from `dagster._core`
(tests/unit/test_layout.py allows exactly this module).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

#: Messages of the engine events Dagster writes around a run worker (dagster/_grpc/impl.py).
STARTED_PREFIX = "Started process for run (pid: "
EXITED_PREFIX = "Process for run exited (pid: "
#: The run tag where DefaultRunLauncher records the gRPC server it launched the run on.
GRPC_INFO_TAG = ".dagster/grpc_info"
#: Clock slack between a process's start time (from /proc, in clock ticks) and the event's stamp.
START_SLACK_SECONDS = 2.0
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", ""})


@dataclass(frozen=True)
class WorkerRecord:
    """What the run's events say about its latest worker process."""

    pid: int
    started_at: float  # the event's timestamp
    exited: bool


def parse_worker_events(events: list[tuple[str, float]]) -> WorkerRecord | None:
    """The latest worker of a run, from its engine events as (message, timestamp) in order."""
    record: WorkerRecord | None = None
    for message, timestamp in events:
        if message.startswith(STARTED_PREFIX):
            pid = _pid_in(message, STARTED_PREFIX)
            if pid is not None:
                record = WorkerRecord(pid, timestamp, exited=False)
        elif (
            message.startswith(EXITED_PREFIX)
            and record is not None
            and _pid_in(message, EXITED_PREFIX) == record.pid
        ):
            record = WorkerRecord(record.pid, record.started_at, exited=True)
    return record


def _pid_in(message: str, prefix: str) -> int | None:
    digits = message[len(prefix) :].split(")", 1)[0]
    return int(digits) if digits.isdigit() else None


def process_alive(pid: int, not_after: float, proc: Path = Path("/proc")) -> bool:
    """Whether `pid` is a live (non-zombie) process that started no later than `not_after`."""
    stat_file = proc / str(pid) / "stat"
    try:
        stat = stat_file.read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: existence is all we can tell
        return _exists(pid)
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start_ticks = fields[0], int(fields[19])
    if state in {"Z", "X", "x"}:
        return False
    started = _boot_time(proc) + start_ticks / os.sysconf("SC_CLK_TCK")
    return started <= not_after + START_SLACK_SECONDS


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _boot_time(proc: Path) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def launched_here(tags: dict[str, str]) -> bool:
    """Whether the run's gRPC server (and so its worker) is on this machine."""
    raw = tags.get(GRPC_INFO_TAG)
    if not raw:
        return False
    info = json.loads(raw)
    if info.get("socket"):
        return True
    host = str(info.get("host") or "")
    return host in LOCAL_HOSTS or host == socket.gethostname()


class LocalRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` plus `check_run_worker_health` from the worker's pid (see module)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """RUNNING unless the run's local worker process is known to be gone (then FAILED)."""
        if not launched_here(dict(run.tags)):
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, "not launched on a local gRPC server: not checked"
            )
        events = [
            (entry.dagster_event.message or "", entry.timestamp)
            for entry in self._instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
            if entry.dagster_event is not None
        ]
        worker = parse_worker_events(events)
        if worker is None:  # launched, worker not started yet: the start timeout covers it
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker not started yet")
        if worker.exited:
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"run worker (pid {worker.pid}) exited without finishing the run",
                run_worker_id=str(worker.pid),
            )
        if process_alive(worker.pid, worker.started_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(worker.pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"run worker process {worker.pid} is gone (killed, or out of memory)",
            run_worker_id=str(worker.pid),
        )
