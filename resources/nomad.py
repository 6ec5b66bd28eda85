"""Launch processing tasks as Nomad batch jobs, or as local subprocesses on a laptop.

Pure client code: no Dagster, no database. The launcher registers one job per ready task and the
status tracker polls `job_state`; both launchers report the same five statuses so the tracker does
not care where a task ran.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

JobStatus = Literal["pending", "running", "complete", "failed", "lost"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"complete", "failed", "lost"})

TASK_GROUP = "processing"
TASK_NAME = "task"
HOSTNAME_ATTRIBUTE = "${attr.unique.hostname}"
STOPPED_MESSAGE = "stopped by request"
# Also a directory name for the local launcher, hence the conservative alphabet.
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class TaskJobSpec(BaseModel):
    """Everything needed to run one processing task as a job, whatever the launcher."""

    model_config = ConfigDict(frozen=True)

    task_id: int
    job_id: str = Field(pattern=JOB_ID_PATTERN)
    image: str = Field(min_length=1)
    cpu_mhz: int = Field(gt=0)
    memory_mb: int = Field(gt=0)
    vm_name: str = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    command: str | None = None
    args: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class JobState:
    """Where a job stands; `exit_code` is known once the task has terminated."""

    status: JobStatus
    exit_code: int | None = None
    message: str = ""

    @property
    def is_terminal(self) -> bool:
        """True once the status can no longer change."""
        return self.status in TERMINAL_STATUSES


class LauncherError(Exception):
    """A launcher could not do what it was asked."""


class NomadUnavailableError(LauncherError):
    """Nomad could not be reached (connection refused, timeout, no leader); worth retrying later."""


class NomadRequestError(LauncherError):
    """Nomad answered with an error (bad job, permission denied, ...); retrying will not help."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@runtime_checkable
class TaskLauncher(Protocol):
    """What the processing chain needs from wherever tasks run."""

    def register_batch_job(self, spec: TaskJobSpec) -> str:
        """Submit the task as a batch job and return its job id."""
        ...

    def job_state(self, job_id: str) -> JobState:
        """The current state of a job; "lost" if the launcher does not know it."""
        ...

    def stop_job(self, job_id: str) -> None:
        """Stop a job if it still runs; stopping an unknown or finished job is a no-op."""
        ...


def wait_for_terminal(
    launcher: TaskLauncher, job_id: str, *, timeout: float, interval: float = 0.05
) -> JobState:
    """Poll a job until it is terminal; raises TimeoutError with its last state after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        state = launcher.job_state(job_id)
        if state.is_terminal:
            return state
        if time.monotonic() >= deadline:
            raise TimeoutError(f"job {job_id} not finished after {timeout}s, last state {state}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Nomad


def build_job_payload(
    spec: TaskJobSpec,
    *,
    datacenters: list[str],
    namespace: str | None = None,
    region: str | None = None,
    vm_attribute: str = HOSTNAME_ATTRIBUTE,
) -> dict[str, Any]:
    """The Nomad JSON job (the value of `{"Job": ...}`) for a task.

    Nomad must not restart or reschedule it: retries are decided by the processing chain, which
    would otherwise see one task run twice behind its back.
    """
    config: dict[str, Any] = {"image": spec.image}
    if spec.command is not None:
        config["command"] = spec.command
    if spec.args:
        config["args"] = list(spec.args)
    job: dict[str, Any] = {
        "ID": spec.job_id,
        "Name": spec.job_id,
        "Type": "batch",
        "Datacenters": list(datacenters),
        "Meta": {"task_id": str(spec.task_id)},  # Nomad meta values must be strings
        "Constraints": [{"LTarget": vm_attribute, "RTarget": spec.vm_name, "Operand": "="}],
        "TaskGroups": [
            {
                "Name": TASK_GROUP,
                "Count": 1,
                "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
                "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
                "Tasks": [
                    {
                        "Name": TASK_NAME,
                        "Driver": "docker",
                        "Config": config,
                        "Env": dict(spec.env),
                        "Resources": {"CPU": spec.cpu_mhz, "MemoryMB": spec.memory_mb},
                    }
                ],
            }
        ],
    }
    if namespace:
        job["Namespace"] = namespace
    if region:
        job["Region"] = region
    return job


def _exit_code(task_state: dict[str, Any]) -> int | None:
    """Exit code of the last Terminated event.

    Only Terminated events count: every Nomad task event carries a deprecated `ExitCode` of 0.
    """
    for event in reversed(task_state.get("Events") or []):
        if event.get("Type") != "Terminated":
            continue
        details = event.get("Details") or {}
        raw = details.get("exit_code", event.get("ExitCode"))
        try:
            return int(raw)
        except (TypeError, ValueError):
            return None
    return None


# Events that say why a task ended; the very last event is often only "Not Restarting".
_DECISIVE_EVENTS = frozenset(
    {
        "Terminated",
        "Killed",
        "Driver Failure",
        "Setup Failure",
        "Failed Validation",
        "Failed Artifact Download",
        "Task hook failed",
        "Sibling Task Failed",
    }
)


def _event_text(event: dict[str, Any]) -> str:
    """One task event as `Type: message`."""
    text = event.get("DisplayMessage") or event.get("Message") or ""
    kind = str(event.get("Type", ""))
    return f"{kind}: {text}" if text else kind


def _describe(task_state: dict[str, Any]) -> str:
    """The event that decided the task's fate, then the last event if it is another one."""
    events = task_state.get("Events") or []
    if not events:
        return ""
    decisive = next((e for e in reversed(events) if e.get("Type") in _DECISIVE_EVENTS), None)
    if decisive is None or decisive is events[-1]:
        return _event_text(events[-1])
    return _join(_event_text(decisive), _event_text(events[-1]))


def _join(*parts: str) -> str:
    """Join the non-empty parts of a message."""
    return "; ".join(part for part in parts if part)


def state_from_nomad(job: dict[str, Any], allocations: list[dict[str, Any]]) -> JobState:
    """Reduce a Nomad job and its allocations to a JobState, from the latest allocation."""
    stopped = bool(job.get("Stop"))
    if not allocations:
        if job.get("Status") == "dead":
            if stopped:
                return JobState("failed", None, f"{STOPPED_MESSAGE} before placement")
            return JobState("lost", None, "job is dead without any allocation")
        return JobState("pending", None, "waiting for placement")
    alloc = max(allocations, key=lambda a: (a.get("CreateIndex", 0), a.get("ModifyIndex", 0)))
    task_states: dict[str, Any] = alloc.get("TaskStates") or {}
    task_state: dict[str, Any] = task_states.get(TASK_NAME) or next(iter(task_states.values()), {})
    exit_code = _exit_code(task_state)
    message = _describe(task_state) or alloc.get("ClientDescription", "")
    client_status = alloc.get("ClientStatus")

    if client_status in ("complete", "failed"):
        failed = client_status == "failed" or bool(task_state.get("Failed"))
        failed = failed or exit_code not in (0, None)
        if stopped and (failed or exit_code is None):
            # Nomad reports a task it killed on our request as "complete", without a clean exit.
            return JobState("failed", exit_code, _join(STOPPED_MESSAGE, message))
        if failed:
            return JobState("failed", exit_code, message)
        return JobState("complete", exit_code, message)
    if client_status in ("lost", "unknown"):
        return JobState("lost", exit_code, message or f"allocation {client_status}")
    if stopped:
        # Stop requested, the client has not reported the kill yet.
        return JobState("running", None, f"{STOPPED_MESSAGE}, waiting for the client")
    if client_status == "running":
        return JobState("running", None, message)
    return JobState("pending", None, message)


_RAISE = object()
_NOT_FOUND = object()


class NomadLauncher:
    """Runs tasks as Nomad batch jobs through python-nomad."""

    def __init__(
        self,
        address: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 4646,
        token: str | None = None,
        namespace: str | None = None,
        region: str | None = None,
        timeout: float = 10.0,
        datacenters: list[str] | None = None,
        vm_attribute: str = HOSTNAME_ATTRIBUTE,
    ) -> None:
        import nomad  # python-nomad (and requests) only when a Nomad launcher is opened

        self._nomad = nomad.Nomad(
            host=host,
            port=port,
            address=address,
            token=token,
            namespace=namespace,
            region=region,
            timeout=timeout,  # annotated int in python-nomad; requests takes a float
        )
        # python-nomad falls back to NOMAD_ADDR/NOMAD_TOKEN/NOMAD_NAMESPACE/NOMAD_REGION for any
        # argument left empty, so report the address it really uses.
        self.address = self._nomad.address or f"http://{host}:{port}"
        self.namespace = self._nomad.get_namespace()
        self.region = self._nomad.region
        self.datacenters = datacenters or ["*"]
        self.vm_attribute = vm_attribute

    def _call(self, what: str, func: Any, *args: Any, not_found: Any = _RAISE) -> Any:
        """Call python-nomad, translating its exceptions into ours with the address and job.

        A 404 returns `not_found` when given: for a job id, it means Nomad does not know the job.
        """
        import nomad.api.exceptions as nomad_exc

        try:
            return func(*args)
        except nomad_exc.URLNotFoundNomadException as exc:
            if not_found is not _RAISE:
                return not_found
            raise self._translate(what, exc) from exc
        except (nomad_exc.BaseNomadException, nomad_exc.TimeoutNomadException) as exc:
            raise self._translate(what, exc) from exc

    def _translate(self, what: str, exc: Exception) -> LauncherError:
        """Connection problems and 5xx become NomadUnavailableError, other answers NomadRequestError."""
        response = getattr(exc, "nomad_resp", None)
        status = getattr(response, "status_code", None)
        if status is None:
            # python-nomad wraps requests' ConnectionError/Timeout in BaseNomadException.
            detail = response if response is not None else exc
            return NomadUnavailableError(f"Nomad at {self.address} unreachable ({what}): {detail}")
        body = (getattr(response, "text", "") or "").strip()[:300]
        if status in (500, 502, 503, 504):
            return NomadUnavailableError(
                f"Nomad at {self.address} answered {status} ({what}): {body}"
            )
        return NomadRequestError(
            f"Nomad at {self.address} answered {status} ({what}): {body}", status
        )

    def register_batch_job(self, spec: TaskJobSpec) -> str:
        """Register the task's batch job; re-registering an unchanged job does not run it again."""
        payload = build_job_payload(
            spec,
            datacenters=self.datacenters,
            namespace=self.namespace,
            region=self.region,
            vm_attribute=self.vm_attribute,
        )
        answer = self._call(
            f"register job {spec.job_id} of task {spec.task_id}",
            self._nomad.jobs.register_job,
            {"Job": payload},
        )
        logger.info(
            "Registered Nomad job %s for task %d on %s (eval %s)",
            spec.job_id,
            spec.task_id,
            spec.vm_name,
            answer.get("EvalID") if isinstance(answer, dict) else None,
        )
        return spec.job_id

    def job_state(self, job_id: str) -> JobState:
        """The job's state from its latest allocation; a job Nomad does not know is "lost"."""
        unknown = JobState("lost", None, f"job {job_id} unknown to Nomad at {self.address}")
        job = self._call(
            f"read job {job_id}", self._nomad.job.get_job, job_id, not_found=_NOT_FOUND
        )
        if job is _NOT_FOUND:
            return unknown
        allocations = self._call(
            f"read allocations of job {job_id}",
            self._nomad.job.get_allocations,
            job_id,
            not_found=_NOT_FOUND,
        )
        if allocations is _NOT_FOUND:  # purged between the two reads
            return unknown
        return state_from_nomad(job, allocations or [])

    def stop_job(self, job_id: str) -> None:
        """Deregister the job without purging it, so its final state stays readable."""
        answer = self._call(
            f"stop job {job_id}", self._nomad.job.deregister_job, job_id, not_found=_NOT_FOUND
        )
        if answer is _NOT_FOUND:
            logger.info("Nomad job %s to stop is unknown; nothing to do", job_id)
        else:
            logger.info("Stopped Nomad job %s", job_id)


# --------------------------------------------------------------------------------------------
# Local subprocesses

# Detaches itself (fork + setsid) so a task outlives the process that launched it and is never that
# process's zombie; records pid and exit code atomically so any process on the host can read them.
_SUPERVISOR = r"""
import json, os, signal, subprocess, sys
# stop_job's SIGTERM must end the job even when the launching process ignores it (a Dagster
# process started with SIGINT ignored copies that onto SIGTERM), which children would inherit.
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.signal(signal.SIGINT, signal.SIG_DFL)
job_dir = sys.argv[1]
def put(name, text):
    tmp = os.path.join(job_dir, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(job_dir, name))
ready_r, ready_w = os.pipe()
if os.fork():
    os.close(ready_w)
    os._exit(0 if os.read(ready_r, 1) else 1)  # wait until the pid is on disk
os.close(ready_r)
os.setsid()  # own process group: stop_job kills the supervisor and the task together
put("supervisor.pid", str(os.getpid()))
os.write(ready_w, b"x")
os.close(ready_w)
with open(os.path.join(job_dir, "launch.json")) as f:
    launch = json.load(f)
with open(os.path.join(job_dir, "stdout.log"), "wb") as out, \
        open(os.path.join(job_dir, "stderr.log"), "wb") as err:
    try:
        child = subprocess.Popen(launch["argv"], env={**os.environ, **launch["env"]},
                                 stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL)
    except OSError as exc:
        err.write(("cannot start %r: %s\n" % (launch["argv"][0], exc)).encode())
        code = 127
    else:
        put("started", json.dumps({"supervisor_pid": os.getpid(), "pid": child.pid}))
        code = child.wait()
put("exit_code", str(128 - code if code < 0 else code))
"""


def _pid_alive(pid: int) -> bool:
    """Whether a process runs (on this host): a zombie, killed but not yet reaped, does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits for its parent to reap it (Linux /proc; else False).

    A stopped job's supervisor is an orphan, reaped by init whenever init gets to it: until
    then kill(pid, 0) still succeeds, and the job would read as running.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class LocalSubprocessLauncher:
    """The embedded default: runs a task's command as a local subprocess, state kept in files.

    The docker image, CPU, memory and VM are ignored. Each job has a directory under `state_dir`
    (launch.json, supervisor.pid, started, exit_code, stopped, stdout.log, stderr.log), so any
    process on this host can read a job's state. Like Nomad with an unchanged batch job,
    registering an existing job id again does not rerun it: use a new job id per attempt.
    """

    DEFAULT_ARGV = (sys.executable, "-c", "pass")

    def __init__(self, state_dir: str | Path, start_timeout: float = 30.0) -> None:
        self.state_dir = Path(state_dir)
        self.start_timeout = start_timeout

    def _job_dir(self, job_id: str) -> Path:
        """The job's directory; the id check keeps a crafted id from escaping `state_dir`."""
        if not re.fullmatch(JOB_ID_PATTERN, job_id) or job_id in (".", ".."):
            raise ValueError(f"invalid job id {job_id!r}")
        return self.state_dir / job_id

    def register_batch_job(self, spec: TaskJobSpec) -> str:
        """Start the task in the background and return its job id."""
        job_dir = self._job_dir(spec.job_id)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            job_dir.mkdir()
        except FileExistsError:
            logger.info("Local job %s already registered; not running it again", spec.job_id)
            return spec.job_id
        argv = [spec.command, *spec.args] if spec.command else [*self.DEFAULT_ARGV, *spec.args]
        # Only the task's own variables go to disk; the supervisor adds the inherited environment,
        # which may hold secrets (database URL, tokens).
        env = {**spec.env, "NOMAD_JOB_ID": spec.job_id, "NOMAD_TASK_NAME": TASK_NAME}
        launch = {"task_id": spec.task_id, "argv": argv, "env": env, "spec": spec.model_dump()}
        _write_atomic(job_dir / "launch.json", json.dumps(launch))
        try:
            with (job_dir / "supervisor.log").open("wb") as supervisor_log:
                # Returns once the supervisor has detached and its pid is on disk.
                subprocess.run(
                    [sys.executable, "-c", _SUPERVISOR, str(job_dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=supervisor_log,
                    timeout=self.start_timeout,
                    check=True,
                )
        except (OSError, subprocess.SubprocessError) as exc:
            detail = _tail(job_dir / "supervisor.log")
            shutil.rmtree(job_dir, ignore_errors=True)
            raise LauncherError(f"cannot start local job {spec.job_id}: {exc} {detail}") from exc
        logger.info(
            "Started local job %s for task %d (pid %s): %s",
            spec.job_id,
            spec.task_id,
            _read_int(job_dir / "supervisor.pid"),
            " ".join(argv),
        )
        return spec.job_id

    def job_state(self, job_id: str) -> JobState:
        """Read the job's files: no directory -> lost, exit code -> complete/failed."""
        job_dir = self._job_dir(job_id)
        if not job_dir.is_dir():
            return JobState("lost", None, f"no local job {job_id} in {self.state_dir}")
        stopped = (job_dir / "stopped").exists()
        exit_code = _read_int(job_dir / "exit_code")
        if exit_code is None:
            supervisor_pid = _read_int(job_dir / "supervisor.pid")
            if supervisor_pid is None:
                return JobState("pending", None, "starting")
            if _pid_alive(supervisor_pid):
                if (job_dir / "started").exists():
                    return JobState("running", None, f"pid {supervisor_pid}")
                return JobState("pending", None, "starting")
            # The supervisor may have written its exit code just before exiting.
            exit_code = _read_int(job_dir / "exit_code")
            if exit_code is None:
                if stopped:
                    return JobState("failed", None, STOPPED_MESSAGE)
                detail = _tail(job_dir / "supervisor.log")
                message = "local supervisor died without an exit code"
                return JobState("lost", None, f"{message}: {detail}" if detail else message)
        if exit_code == 0:
            return JobState("complete", 0, "exit code 0")
        message = f"exit code {exit_code}"
        if stopped:
            message = f"{STOPPED_MESSAGE}; {message}"
        tail = _tail(job_dir / "stderr.log")
        return JobState("failed", exit_code, f"{message}: {tail}" if tail else message)

    def stop_job(self, job_id: str) -> None:
        """Kill the job's process group unless it has already finished."""
        job_dir = self._job_dir(job_id)
        if not job_dir.is_dir() or (job_dir / "exit_code").exists():
            return
        # Marker first: a reader that then finds the process gone knows why.
        _write_atomic(job_dir / "stopped", "")
        supervisor_pid = _read_int(job_dir / "supervisor.pid")
        if supervisor_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(supervisor_pid, signal.SIGTERM)
        logger.info("Stopped local job %s", job_id)


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_int(path: Path) -> int | None:
    """An integer file's value, None if absent or not (yet) an integer."""
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def _tail(path: Path, limit: int = 500) -> str:
    """The end of a log file on one line, to explain a failure in the status table."""
    try:
        data = path.read_bytes()[-limit:]
    except FileNotFoundError:
        return ""
    return " ".join(data.decode("utf-8", errors="replace").split())


@dataclass(frozen=True)
class LaunchSettings:
    """How tasks become jobs."""

    products_dir: str
    """Where products are written: `<products_dir>/<output product type>/task-<id>`."""
    mhz_per_core: int = 1000
    """Nomad reserves CPU in MHz; a routine's `cpu` is in cores."""
    lock_wait_s: float = 60.0
    """How long a launcher waits for ready tasks someone else holds, once the free ones are done."""
