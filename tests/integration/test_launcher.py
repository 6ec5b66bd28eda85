"""The launcher and the status tracker against the fake Nomad server, on real PostgreSQL."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from dagster import DagsterInstance

from platform_assets.processing.launch import (
    dispatch_ready,
    job_id_for,
    poll_statuses,
    ready_task_ids,
)
from platform_assets.processing.orchestrate import OrchestratorSettings, orchestrate
from resources.launcher import LauncherResource
from resources.nomad import (
    LocalSubprocessLauncher,
    NomadLauncher,
    NomadUnavailableError,
)
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource
from tests.fakes.nomad_server import FakeNomadServer, running_nomad_server
from tests.integration.processing_chain_helpers import (
    HEAD,
    SUCCESSOR,
    add_inputs,
    output_metadata,
    poll_until,
    seed,
    sql,
    tasks,
)

SETTINGS = OrchestratorSettings(max_vms=20, horizon_s=24 * 3600)


@pytest.fixture(autouse=True)
def no_nomad_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("FISHNET_PRODUCTS_DIR", raising=False)


@pytest.fixture
def nomad() -> FakeNomadServer:
    with running_nomad_server() as server:
        yield server


def planned(warehouse: WarehouseResource, count: int = 3) -> list[dict]:
    """Seed routines, add inputs, plan them; the head tasks."""
    seed(warehouse)
    add_inputs(warehouse, count)
    orchestrate(warehouse.engine, SETTINGS)
    return [t for t in tasks(warehouse) if t["routine"] == HEAD]


def resource_for(server: FakeNomadServer, **fields: object) -> LauncherResource:
    return LauncherResource(nomad_address=server.address, products_dir="/data/products", **fields)


def statuses(warehouse: WarehouseResource, task_id: int) -> list[tuple]:
    return sql(
        warehouse,
        "SELECT s.status, s.exit_code, s.message, d.attempt FROM processing.processing_status s "
        "JOIN processing.nomad_job_dispatch d ON d.id = s.dispatch_id "
        "WHERE s.task_id = %s ORDER BY s.at, s.id",
        task_id,
    )


def poll_until_settled(warehouse: WarehouseResource, launcher: LauncherResource) -> None:
    """Poll statuses (retrying failed attempts) until no job runs."""

    def settled() -> bool:
        poll_statuses(warehouse.engine, launcher.launcher(), launcher.settings().products_dir)
        dispatch_ready(warehouse.engine, launcher.launcher(), launcher.settings())
        return not sql(
            warehouse,
            "SELECT 1 FROM processing.task_attempt WHERE status IS NULL "
            "OR status IN ('pending', 'started')",
        )

    poll_until(settled, timeout=30)


def test_ready_tasks_become_nomad_jobs_as_specified(
    warehouse: WarehouseResource, nomad: FakeNomadServer
) -> None:
    heads = planned(warehouse)
    launcher = resource_for(nomad)
    report = dispatch_ready(warehouse.engine, launcher.launcher(), launcher.settings())

    # successors wait for their predecessor: only the heads are ready
    assert sorted(d.task_id for d in report.dispatched) == [t["id"] for t in heads]
    head = heads[0]
    job = nomad.job_payload(job_id_for(head["id"], 1))
    assert job["ID"] == f"task-{head['id']}-a1" and job["Type"] == "batch"
    assert job["Constraints"] == [
        {"LTarget": "${attr.unique.hostname}", "RTarget": head["vm"], "Operand": "="}
    ]
    (group,) = job["TaskGroups"]
    (task,) = group["Tasks"]
    assert task["Driver"] == "docker"
    assert task["Config"] == {"image": "ghcr.io/fishnet/s2-ndvi:1.0"}
    assert task["Resources"] == {"CPU": 1000, "MemoryMB": 4096}
    input_path = sql(
        warehouse, "SELECT path FROM processing.input WHERE id = %s", head["input_id"]
    )[0][0]
    assert task["Env"]["FISHNET_TASK_ID"] == str(head["id"])
    assert task["Env"]["FISHNET_INPUT_PATH"] == input_path
    assert task["Env"]["FISHNET_OUTPUT_PATH"] == f"/data/products/NDVI/task-{head['id']}"
    assert task["Env"]["FISHNET_ATTEMPT"] == "1"

    # one dispatch row and one pending status per job, in the same transaction
    rows = sql(
        warehouse,
        "SELECT task_id, attempt, nomad_job_id, output_path FROM processing.nomad_job_dispatch "
        "ORDER BY task_id",
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (t["id"], 1, job_id_for(t["id"], 1)) for t in heads
    ]
    assert [s[0] for s in statuses(warehouse, head["id"])] == ["pending"]
    # nothing left to dispatch, and a second pass registers nothing again
    assert ready_task_ids(warehouse.engine) == []
    registered = len(nomad.registered_jobs)
    assert (
        dispatch_ready(warehouse.engine, launcher.launcher(), launcher.settings()).dispatched == []
    )
    assert len(nomad.registered_jobs) == registered == 3


def test_job_states_map_to_statuses_and_products(
    warehouse: WarehouseResource, nomad: FakeNomadServer
) -> None:
    heads = planned(warehouse, 3)
    ok, failing, lost = (t["id"] for t in heads)
    nomad.script(job_id_for(ok, 1), ["pending", "running", ("complete", 0)])
    nomad.script(job_id_for(failing, 1), ["running", ("failed", 3)])
    nomad.script(job_id_for(lost, 1), ["running", "lost"])
    sql(warehouse, "UPDATE processing.processing_routine SET max_attempts = 1")
    launcher = resource_for(nomad)
    dispatch_ready(warehouse.engine, launcher.launcher(), launcher.settings())

    poll_until_settled(warehouse, launcher)
    assert [s[:2] for s in statuses(warehouse, ok)] == [
        ("pending", None),
        ("started", None),
        ("processed", 0),
    ]
    assert statuses(warehouse, failing)[-1][:2] == ("internal_error", 3)
    assert statuses(warehouse, lost)[-1][:3] == ("external_error", None, "lost")
    # the processed head's successor became ready and ran on the head's product; the failed
    # heads' successors never become ready
    (successor,) = [t["id"] for t in tasks(warehouse) if t["preceding"] == ok]
    products = sql(
        warehouse, "SELECT task_id, path, product_type FROM processing.product ORDER BY id"
    )
    assert products == [
        (ok, f"/data/products/NDVI/task-{ok}", "NDVI"),
        (successor, f"/data/products/NDVI_COMPOSITE/task-{successor}", "NDVI_COMPOSITE"),
    ]
    env = nomad.job_payload(job_id_for(successor, 1))["TaskGroups"][0]["Tasks"][0]["Env"]
    assert env["FISHNET_INPUT_PATH"] == products[0][1]
    assert ready_task_ids(warehouse.engine) == []


def test_a_job_nomad_no_longer_knows_is_an_external_error(
    warehouse: WarehouseResource, nomad: FakeNomadServer
) -> None:
    (head, *_) = planned(warehouse, 1)
    sql(warehouse, "UPDATE processing.processing_routine SET max_attempts = 1")
    launcher = resource_for(nomad)
    dispatch_ready(warehouse.engine, launcher.launcher(), launcher.settings())
    nomad.stop("default", job_id_for(head["id"], 1), purge=True)  # garbage-collected

    report = poll_statuses(warehouse.engine, launcher.launcher(), "/data/products")
    (change,) = report.changes
    assert (change.status, change.message, change.retry) == ("external_error", "lost", False)
    assert statuses(warehouse, head["id"])[-1][:3] == ("external_error", None, "lost")


def test_a_failed_job_is_retried_up_to_max_attempts(
    warehouse: WarehouseResource, nomad: FakeNomadServer
) -> None:
    (head, *_) = planned(warehouse, 1)
    sql(
        warehouse, "UPDATE processing.processing_routine SET max_attempts = 3 WHERE name = %s", HEAD
    )
    nomad.script(f"task-{head['id']}-", ["running", ("failed", 1)])
    launcher = resource_for(nomad)
    dispatch_ready(warehouse.engine, launcher.launcher(), launcher.settings())

    poll_until_settled(warehouse, launcher)
    attempts = sql(
        warehouse,
        "SELECT attempt, nomad_job_id FROM processing.nomad_job_dispatch WHERE task_id = %s "
        "ORDER BY attempt",
        head["id"],
    )
    assert attempts == [(n, f"task-{head['id']}-a{n}") for n in (1, 2, 3)]
    assert [p["ID"] for p in nomad.registered_jobs] == [a[1] for a in attempts]
    history = statuses(warehouse, head["id"])
    assert [(s[0], s[3]) for s in history if s[0] == "internal_error"] == [
        ("internal_error", 1),
        ("internal_error", 2),
        ("internal_error", 3),
    ]
    assert history[-1][:2] == ("internal_error", 1)  # failed for good: stays failed
    assert ready_task_ids(warehouse.engine) == []
    assert sql(warehouse, "SELECT count(*) FROM processing.product")[0][0] == 0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_nomad_down_dispatches_nothing(warehouse: WarehouseResource) -> None:
    planned(warehouse, 2)
    launcher = LauncherResource(nomad_address=f"http://127.0.0.1:{_closed_port()}", timeout_s=2)
    with pytest.raises(NomadUnavailableError, match="unreachable"):
        dispatch_ready(warehouse.engine, launcher.launcher(), launcher.settings())
    assert sql(warehouse, "SELECT count(*) FROM processing.nomad_job_dispatch")[0][0] == 0
    assert sql(warehouse, "SELECT count(*) FROM processing.processing_status")[0][0] == 0
    assert len(ready_task_ids(warehouse.engine)) == 2  # still ready for the next launcher


def test_nomad_down_fails_the_launcher_run_with_a_clear_error(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance
) -> None:
    from platform_assets.processing.jobs import processing_launcher_job

    planned(warehouse, 1)
    address = f"http://127.0.0.1:{_closed_port()}"
    result = processing_launcher_job.execute_in_process(
        instance=dagster_instance,
        resources={
            "warehouse": warehouse,
            "launcher": LauncherResource(nomad_address=address, timeout_s=2),
            "dry_run": DryRunResource(),
        },
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.event_specific_data.error.message
    assert "unreachable" in message and "not marked dispatched" in message
    assert sql(warehouse, "SELECT count(*) FROM processing.nomad_job_dispatch")[0][0] == 0


def test_racing_launchers_dispatch_each_ready_task_once(
    warehouse: WarehouseResource, nomad: FakeNomadServer
) -> None:
    heads = planned(warehouse, 25)
    launcher = resource_for(nomad)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    dispatched: list[int] = []

    def run() -> None:
        try:
            barrier.wait()
            report = dispatch_ready(warehouse.engine, launcher.launcher(), launcher.settings())
            dispatched.extend(d.task_id for d in report.dispatched)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(dispatched) == [t["id"] for t in heads]
    registered = [job["ID"] for job in nomad.registered_jobs]
    assert sorted(registered) == sorted(job_id_for(t["id"], 1) for t in heads)
    assert sql(warehouse, "SELECT count(*) FROM processing.nomad_job_dispatch")[0][0] == 25
    assert sql(warehouse, "SELECT count(*) FROM processing.processing_status")[0][0] == 25


def test_a_launcher_waits_for_a_task_an_orchestrator_holds(
    warehouse: WarehouseResource, nomad: FakeNomadServer
) -> None:
    (head, *_) = planned(warehouse, 1)
    launcher = resource_for(nomad)
    release = threading.Event()

    def hold() -> None:  # an orchestrator replanning the task for a moment
        with warehouse.connect() as conn:
            conn.execute(
                "SELECT id FROM processing.processing_task WHERE id = %s FOR NO KEY UPDATE",
                (head["id"],),
            )
            held.set()
            release.wait(10)

    held = threading.Event()
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    threading.Timer(0.3, release.set).start()
    report = dispatch_ready(warehouse.engine, launcher.launcher(), launcher.settings())
    holder.join()
    assert [d.task_id for d in report.dispatched] == [head["id"]]


def test_launcher_resource_picks_nomad_from_the_environment_at_use_time(
    monkeypatch: pytest.MonkeyPatch, nomad: FakeNomadServer, tmp_path: Path
) -> None:
    resource = LauncherResource(local_state_dir=str(tmp_path))
    assert resource.kind == "local"
    assert resource.settings().products_dir == str(tmp_path / "products")
    local = resource.launcher()
    assert isinstance(getattr(local, "local", None), LocalSubprocessLauncher)

    monkeypatch.setenv("NOMAD_ADDR", nomad.address)
    monkeypatch.setenv("NOMAD_NAMESPACE", "science")
    monkeypatch.setenv("NOMAD_REGION", "global")
    assert resource.kind == "nomad"
    client = resource.launcher()
    assert isinstance(client, NomadLauncher)
    assert (client.address, client.namespace, client.region) == (
        nomad.address,
        "science",
        "global",
    )
    assert resource.settings().products_dir == "/data/products"


def test_launcher_job_metadata(
    warehouse: WarehouseResource, nomad: FakeNomadServer, dagster_instance: DagsterInstance
) -> None:
    from platform_assets.processing.jobs import processing_launcher_job

    planned(warehouse, 2)
    result = processing_launcher_job.execute_in_process(
        instance=dagster_instance,
        resources={
            "warehouse": warehouse,
            "launcher": resource_for(nomad),
            "dry_run": DryRunResource(),
        },
    )
    metadata = output_metadata(result, "launch_ready_tasks")
    assert metadata["launcher"] == "nomad" and metadata["dispatched"] == 2
    assert {t["routine"] for t in tasks(warehouse)} == {HEAD, SUCCESSOR}
