"""Task launchers: Nomad through python-nomad against a local stand-in, and local subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from resources.nomad import (
    STOPPED_MESSAGE,
    JobState,
    LocalSubprocessLauncher,
    NomadLauncher,
    NomadRequestError,
    NomadUnavailableError,
    TaskJobSpec,
    TaskLauncher,
    state_from_nomad,
    wait_for_terminal,
)
from tests.fakes.nomad_server import FakeNomadServer, running_nomad_server

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_nomad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-nomad reads NOMAD_* for any argument left empty; keep the developer's out."""
    for name in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def nomad_server() -> Iterator[FakeNomadServer]:
    with running_nomad_server() as server:
        yield server


def spec(job_id: str = "task-42-1", **overrides: Any) -> TaskJobSpec:
    values: dict[str, Any] = {
        "task_id": 42,
        "job_id": job_id,
        "image": "registry.example/s2-l2a-snow:1.4",
        "cpu_mhz": 2000,
        "memory_mb": 4096,
        "vm_name": "worker-vm-03",
        "env": {"INPUT_ID": "S2B_MSIL2A_20260310", "OUTPUT_BUCKET": "s3://products"},
        "command": "/app/run.sh",
        "args": ["--tile", "31TCJ"],
    }
    values.update(overrides)
    return TaskJobSpec(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll_states(
    read: Callable[[], JobState], until: Callable[[JobState], bool], timeout: float = 15.0
) -> list[JobState]:
    """Read states until one satisfies `until`; returns the distinct states seen, in order."""
    deadline = time.monotonic() + timeout
    seen: list[JobState] = []
    while True:
        state = read()
        if not seen or seen[-1].status != state.status:
            seen.append(state)
        if until(state):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting; states seen: {seen}")
        time.sleep(0.02)


def test_both_launchers_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(NomadLauncher("http://127.0.0.1:4646"), TaskLauncher)
    assert isinstance(LocalSubprocessLauncher(tmp_path), TaskLauncher)


@pytest.mark.parametrize("job_id", ["", "../escape", "a/b", "-leading-dash", "x" * 129])
def test_job_ids_are_checked(job_id: str) -> None:
    with pytest.raises(ValidationError):
        spec(job_id)


# --------------------------------------------------------------------------------------------
# Nomad


def test_register_builds_the_batch_job(nomad_server: FakeNomadServer) -> None:
    launcher = NomadLauncher(nomad_server.address)

    assert launcher.register_batch_job(spec()) == "task-42-1"

    [job] = nomad_server.registered_jobs
    assert job["ID"] == job["Name"] == "task-42-1"
    assert job["Type"] == "batch"
    assert job["Meta"] == {"task_id": "42"}
    assert job["Constraints"] == [
        {"LTarget": "${attr.unique.hostname}", "RTarget": "worker-vm-03", "Operand": "="}
    ]
    [group] = job["TaskGroups"]
    assert group["Count"] == 1
    assert group["RestartPolicy"]["Attempts"] == 0
    assert group["ReschedulePolicy"] == {"Attempts": 0, "Unlimited": False}
    [task] = group["Tasks"]
    assert task["Driver"] == "docker"
    assert task["Config"] == {
        "image": "registry.example/s2-l2a-snow:1.4",
        "command": "/app/run.sh",
        "args": ["--tile", "31TCJ"],
    }
    assert task["Resources"] == {"CPU": 2000, "MemoryMB": 4096}
    assert task["Env"] == {"INPUT_ID": "S2B_MSIL2A_20260310", "OUTPUT_BUCKET": "s3://products"}
    register = nomad_server.requests[0]
    assert (register.method, register.path) in {("PUT", "/v1/jobs"), ("POST", "/v1/jobs")}


def test_register_without_command_keeps_the_image_entrypoint(nomad_server: FakeNomadServer) -> None:
    NomadLauncher(nomad_server.address, vm_attribute="${meta.vm_name}").register_batch_job(
        spec(command=None, args=[])
    )

    [job] = nomad_server.registered_jobs
    assert job["TaskGroups"][0]["Tasks"][0]["Config"] == {
        "image": "registry.example/s2-l2a-snow:1.4"
    }
    assert job["Constraints"][0]["LTarget"] == "${meta.vm_name}"


def test_job_goes_pending_running_complete(nomad_server: FakeNomadServer) -> None:
    nomad_server.script("task-", ["queued", "pending", "running", ("complete", 0)])
    launcher = NomadLauncher(nomad_server.address)
    launcher.register_batch_job(spec())

    states = [launcher.job_state("task-42-1") for _ in range(5)]

    assert [s.status for s in states] == ["pending", "pending", "running", "complete", "complete"]
    assert states[-1].exit_code == 0
    assert "Exit Code: 0" in states[-1].message


def test_failed_job_reports_its_exit_code(nomad_server: FakeNomadServer) -> None:
    nomad_server.script("task-42-1", ["running", ("failed", 3)])
    launcher = NomadLauncher(nomad_server.address)
    launcher.register_batch_job(spec())

    state = wait_for_terminal(launcher, "task-42-1", timeout=5, interval=0)

    assert state == JobState("failed", 3, state.message)
    assert "Exit Code: 3" in state.message


def test_task_that_never_started_fails_without_exit_code(nomad_server: FakeNomadServer) -> None:
    nomad_server.script("task-", [("failed", None)])
    launcher = NomadLauncher(nomad_server.address)
    launcher.register_batch_job(spec())

    state = launcher.job_state("task-42-1")

    assert (state.status, state.exit_code) == ("failed", None)
    assert "Driver Failure" in state.message


def test_lost_allocation_and_unknown_job_are_lost(nomad_server: FakeNomadServer) -> None:
    nomad_server.script("task-", ["running", "lost"])
    launcher = NomadLauncher(nomad_server.address)
    launcher.register_batch_job(spec())

    assert [launcher.job_state("task-42-1").status for _ in range(2)] == ["running", "lost"]
    unknown = launcher.job_state("never-registered")
    assert unknown.status == "lost"
    assert "unknown" in unknown.message


def test_stop_job(nomad_server: FakeNomadServer) -> None:
    nomad_server.script("task-", ["running"])
    launcher = NomadLauncher(nomad_server.address)
    launcher.register_batch_job(spec())
    assert launcher.job_state("task-42-1").status == "running"

    launcher.stop_job("task-42-1")
    launcher.stop_job("never-registered")  # no-op

    state = launcher.job_state("task-42-1")
    assert (state.status, state.exit_code) == ("failed", 137)
    assert STOPPED_MESSAGE in state.message
    assert any(
        r.method == "DELETE" and r.path == "/v1/job/task-42-1" for r in nomad_server.requests
    )


def test_namespace_and_region_are_sent(nomad_server: FakeNomadServer) -> None:
    launcher = NomadLauncher(nomad_server.address, namespace="processing", region="global")
    launcher.register_batch_job(spec())

    assert launcher.job_state("task-42-1").status == "pending"
    assert (
        nomad_server.job_payload("task-42-1", namespace="processing")["Namespace"] == "processing"
    )
    assert all(r.params.get("namespace") == "processing" for r in nomad_server.requests)
    assert all(r.params.get("region") == "global" for r in nomad_server.requests)
    # The same job id in the default namespace is another job.
    assert NomadLauncher(nomad_server.address).job_state("task-42-1").status == "lost"


def test_token_required() -> None:
    with running_nomad_server(token="acl-secret") as server:
        with pytest.raises(NomadRequestError, match="403") as refused:
            NomadLauncher(server.address).register_batch_job(spec())
        assert refused.value.status_code == 403
        assert server.registered_jobs == []

        launcher = NomadLauncher(server.address, token="acl-secret")
        launcher.register_batch_job(spec())
        assert launcher.job_state("task-42-1").status == "pending"
        assert server.requests[-1].token == "acl-secret"

        with pytest.raises(NomadRequestError, match="403"):
            NomadLauncher(server.address, token="wrong").job_state("task-42-1")


def test_server_down_is_nomad_unavailable() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    launcher = NomadLauncher(address, timeout=2)

    for call in (
        lambda: launcher.register_batch_job(spec()),
        lambda: launcher.job_state("task-42-1"),
        lambda: launcher.stop_job("task-42-1"),
    ):
        with pytest.raises(NomadUnavailableError, match=address):
            call()


def test_host_and_port_instead_of_address(nomad_server: FakeNomadServer) -> None:
    port = int(nomad_server.address.rsplit(":", 1)[1])
    launcher = NomadLauncher(host="127.0.0.1", port=port)
    assert launcher.register_batch_job(spec()) == "task-42-1"
    assert launcher.address == nomad_server.address


@pytest.mark.parametrize(
    ("job", "allocations", "expected"),
    [
        ({"Status": "pending"}, [], JobState("pending", None, "waiting for placement")),
        (
            {"Status": "dead", "Stop": True},
            [],
            JobState("failed", None, f"{STOPPED_MESSAGE} before placement"),
        ),
        ({"Status": "dead"}, [], JobState("lost", None, "job is dead without any allocation")),
        (  # every event carries ExitCode 0; only a Terminated one says how the task ended
            {"Status": "dead"},
            [
                {
                    "CreateIndex": 5,
                    "ClientStatus": "failed",
                    "TaskStates": {
                        "task": {
                            "Failed": True,
                            "Events": [
                                {"Type": "Started", "ExitCode": 0, "Details": {}},
                                {
                                    "Type": "Terminated",
                                    "ExitCode": 0,
                                    "Details": {"exit_code": "2"},
                                },
                                {
                                    "Type": "Not Restarting",
                                    "ExitCode": 0,
                                    "DisplayMessage": "no restarts",
                                },
                            ],
                        }
                    },
                }
            ],
            JobState("failed", 2, "Terminated; Not Restarting: no restarts"),
        ),
        (  # the latest allocation wins
            {"Status": "running"},
            [
                {"CreateIndex": 9, "ClientStatus": "running", "TaskStates": {}},
                {"CreateIndex": 5, "ClientStatus": "failed", "TaskStates": {}},
            ],
            JobState("running", None, ""),
        ),
        (  # older Nomad: exit code only in the event's ExitCode field
            {"Status": "dead"},
            [
                {
                    "CreateIndex": 1,
                    "ClientStatus": "complete",
                    "TaskStates": {"task": {"Events": [{"Type": "Terminated", "ExitCode": 0}]}},
                }
            ],
            JobState("complete", 0, "Terminated"),
        ),
    ],
)
def test_state_from_nomad(
    job: dict[str, Any], allocations: list[dict[str, Any]], expected: JobState
) -> None:
    assert state_from_nomad(job, allocations) == expected


# --------------------------------------------------------------------------------------------
# Local subprocesses

# Waits until the file named by its first argument exists, so a test can watch it run.
WAIT_FOR_FILE = (
    "import os, sys, time\n"
    "while not os.path.exists(sys.argv[1]):\n"
    "    time.sleep(0.01)\n"
    "print(os.environ['INPUT_ID'])\n"
)


def local_spec(job_id: str, code: str, *args: str, **overrides: Any) -> TaskJobSpec:
    return spec(job_id, command=sys.executable, args=["-c", code, *args], **overrides)


def test_local_job_success_lifecycle(tmp_path: Path) -> None:
    launcher = LocalSubprocessLauncher(tmp_path / "jobs")
    release = tmp_path / "release"
    launcher.register_batch_job(local_spec("task-1", WAIT_FOR_FILE, str(release)))

    before = poll_states(lambda: launcher.job_state("task-1"), lambda s: s.status == "running")
    release.touch()
    after = poll_states(lambda: launcher.job_state("task-1"), lambda s: s.is_terminal)

    statuses = [s.status for s in before + after]
    assert statuses[-1] == "complete"
    assert "running" in statuses
    assert set(statuses) <= {"pending", "running", "complete"}
    assert after[-1].exit_code == 0
    assert (
        tmp_path / "jobs" / "task-1" / "stdout.log"
    ).read_text().strip() == "S2B_MSIL2A_20260310"


def test_local_job_failure_keeps_exit_code_and_stderr(tmp_path: Path) -> None:
    launcher = LocalSubprocessLauncher(tmp_path)
    code = "import sys; sys.stderr.write('tile 31TCJ has no data\\n'); sys.exit(3)"
    launcher.register_batch_job(local_spec("task-2", code))

    state = wait_for_terminal(launcher, "task-2", timeout=15)

    assert (state.status, state.exit_code) == ("failed", 3)
    assert "tile 31TCJ has no data" in state.message


def test_local_job_default_command_and_missing_executable(tmp_path: Path) -> None:
    launcher = LocalSubprocessLauncher(tmp_path)
    launcher.register_batch_job(spec("noop", command=None, args=[]))
    launcher.register_batch_job(spec("missing", command=str(tmp_path / "no-such-binary")))

    assert wait_for_terminal(launcher, "noop", timeout=15) == JobState("complete", 0, "exit code 0")
    missing = wait_for_terminal(launcher, "missing", timeout=15)
    assert (missing.status, missing.exit_code) == ("failed", 127)
    assert "no-such-binary" in missing.message


def test_local_job_state_is_readable_from_another_process(tmp_path: Path) -> None:
    launcher = LocalSubprocessLauncher(tmp_path)
    launcher.register_batch_job(local_spec("task-3", "import sys; sys.exit(4)"))
    wait_for_terminal(launcher, "task-3", timeout=15)

    reader = (
        "import json, sys\n"
        "from resources.nomad import LocalSubprocessLauncher\n"
        "state = LocalSubprocessLauncher(sys.argv[1]).job_state('task-3')\n"
        "print(json.dumps([state.status, state.exit_code]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", reader, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout) == ["failed", 4]
    # and a fresh launcher in this process, as after a restart
    assert LocalSubprocessLauncher(tmp_path).job_state("task-3").exit_code == 4


def test_local_stop_job(tmp_path: Path) -> None:
    launcher = LocalSubprocessLauncher(tmp_path / "jobs")
    launcher.register_batch_job(local_spec("task-4", WAIT_FOR_FILE, str(tmp_path / "never")))
    poll_states(lambda: launcher.job_state("task-4"), lambda s: s.status == "running")

    launcher.stop_job("task-4")
    try:
        state = wait_for_terminal(launcher, "task-4", timeout=15)
    finally:
        (tmp_path / "never").touch()  # a job the stop missed must not outlive the test

    assert state.status == "failed"
    assert STOPPED_MESSAGE in state.message
    launcher.stop_job("task-4")  # stopping twice, or an unknown job, is a no-op
    launcher.stop_job("unknown")


def test_local_stop_job_when_the_launching_process_ignores_sigterm(tmp_path: Path) -> None:
    # Dagster maps SIGTERM to SIGINT's handler, and a process started in the background
    # ignores SIGINT: the job must not inherit "ignore SIGTERM", or stop_job cannot end it.
    launcher = LocalSubprocessLauncher(tmp_path / "jobs")
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        launcher.register_batch_job(local_spec("task-9", WAIT_FOR_FILE, str(tmp_path / "never")))
    finally:
        signal.signal(signal.SIGTERM, previous)
    poll_states(lambda: launcher.job_state("task-9"), lambda s: s.status == "running")

    launcher.stop_job("task-9")
    try:
        state = wait_for_terminal(launcher, "task-9", timeout=15)
    finally:
        (tmp_path / "never").touch()

    assert state.status == "failed"
    assert STOPPED_MESSAGE in state.message


def test_local_unknown_job_is_lost_and_registration_is_idempotent(tmp_path: Path) -> None:
    launcher = LocalSubprocessLauncher(tmp_path / "jobs")
    assert launcher.job_state("unknown").status == "lost"

    runs = tmp_path / "runs"
    code = "import sys; open(sys.argv[1], 'a').write('x')"
    for _ in range(2):
        launcher.register_batch_job(local_spec("task-5", code, str(runs)))
        wait_for_terminal(launcher, "task-5", timeout=15)

    assert runs.read_text() == "x"


def test_local_supervisor_killed_is_lost(tmp_path: Path) -> None:
    """A task whose supervisor vanished without an exit code (host reboot, kill -9) is lost."""
    launcher = LocalSubprocessLauncher(tmp_path)
    job_dir = tmp_path / "ghost"
    job_dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (job_dir / "supervisor.pid").write_text(str(dead.pid))

    assert launcher.job_state("ghost").status == "lost"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_but_unreaped_process_is_not_alive() -> None:
    # A stopped job's supervisor stays a zombie until init reaps it, and kill(pid, 0) still
    # succeeds on a zombie: the job must read as stopped meanwhile, not as running.
    from resources.nomad import _pid_alive

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert not _pid_alive(pid)
    finally:
        os.waitpid(pid, 0)
    assert not _pid_alive(pid)
