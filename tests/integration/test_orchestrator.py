"""The orchestrator on real PostgreSQL: tasks on VMs within capacity, replanning, races, reasons."""

from __future__ import annotations

import threading

import pytest

from platform_assets.processing.orchestrate import (
    OrchestratorSettings,
    orchestrate,
    settings_from_env,
)
from resources.warehouse import WarehouseResource
from tests.integration.processing_chain_helpers import (
    HEAD,
    SUCCESSOR,
    add_inputs,
    assert_within_capacity,
    seed,
    sql,
    tasks,
)

SETTINGS = OrchestratorSettings(max_vms=20, horizon_s=24 * 3600)


@pytest.fixture
def seeded(warehouse: WarehouseResource) -> WarehouseResource:
    seed(warehouse)
    return warehouse


def start(warehouse: WarehouseResource, task_id: int, status: str = "started") -> None:
    """Record a dispatch of the task and a status, as the launcher and tracker would."""
    dispatch = sql(
        warehouse,
        "INSERT INTO processing.nomad_job_dispatch (task_id, attempt, nomad_job_id) "
        "VALUES (%s, 1, %s) RETURNING id",
        task_id,
        f"task-{task_id}-a1",
    )[0][0]
    sql(
        warehouse,
        "INSERT INTO processing.processing_status (task_id, dispatch_id, status, at) "
        "VALUES (%s, %s, %s, clock_timestamp())",
        task_id,
        dispatch,
        status,
    )


def test_plans_each_input_and_its_chain_on_vms_within_capacity(
    seeded: WarehouseResource,
) -> None:
    inputs = add_inputs(seeded, 12)
    report = orchestrate(seeded.engine, SETTINGS)

    rows = tasks(seeded)
    heads = [t for t in rows if t["routine"] == HEAD]
    successors = [t for t in rows if t["routine"] == SUCCESSOR]
    assert sorted(t["input_id"] for t in heads) == inputs
    # one successor per head, planned ahead for the product it will read, on the same VM
    assert sorted(t["preceding"] for t in successors) == sorted(t["id"] for t in heads)
    by_id = {t["id"]: t for t in rows}
    for successor in successors:
        assert successor["input_id"] is None
        assert successor["vm"] == by_id[successor["preceding"]]["vm"]
    assert all(t["vm"] is not None and t["unplaced_reason"] is None for t in rows)
    assert_within_capacity(seeded)

    assert report.new_tasks == report.planned_tasks == 24
    assert report.unplaced == [] and report.pending_pairs == 12
    vms = sql(seeded, "SELECT name, flavour FROM processing.virtual_machine ORDER BY id")
    assert report.vms_used == len(vms) == len({t["vm"] for t in rows})
    assert report.new_vms == [name for name, _ in vms]
    assert all(name.startswith("vm-") for name, _ in vms)
    assert report.lower_bound is not None and 1 <= report.lower_bound <= report.vms_used


def test_a_second_run_adds_nothing_and_keeps_every_input_planned_once(
    seeded: WarehouseResource,
) -> None:
    add_inputs(seeded, 5)
    orchestrate(seeded.engine, SETTINGS)
    again = orchestrate(seeded.engine, SETTINGS)
    assert again.new_tasks == 0 and again.pending_pairs == 0
    assert again.replanned_tasks == 10  # nothing started: everything is replanned from now
    assert len(tasks(seeded)) == 10
    assert_within_capacity(seeded)


def test_replanning_leaves_started_tasks_alone(seeded: WarehouseResource) -> None:
    add_inputs(seeded, 4)
    orchestrate(seeded.engine, SETTINGS)
    before = {t["id"]: t for t in tasks(seeded)}
    started_id = min(t["id"] for t in before.values() if t["routine"] == HEAD)
    done_id = max(t["id"] for t in before.values() if t["routine"] == HEAD)
    start(seeded, started_id, "started")
    start(seeded, done_id, "processed")

    add_inputs(seeded, 6, prefix="later")
    report = orchestrate(seeded.engine, SETTINGS)
    after = {t["id"]: t for t in tasks(seeded)}
    for fixed in (started_id, done_id):
        assert after[fixed] == before[fixed]  # same VM, same planned slot
    assert report.fixed_tasks == 1  # the running one loads its VM; the processed one anchors
    assert report.new_tasks == 12 and report.replanned_tasks == 6
    # the successors of the started and of the processed task stay on their VM
    for fixed in (started_id, done_id):
        (successor,) = [t for t in after.values() if t["preceding"] == fixed]
        assert successor["vm"] == after[fixed]["vm"]
    assert all(t["vm"] is not None for t in after.values())
    assert_within_capacity(seeded)


def test_concurrent_orchestrator_runs_do_not_double_tasks(seeded: WarehouseResource) -> None:
    add_inputs(seeded, 30)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []
    reports = []

    def run() -> None:
        try:
            barrier.wait()
            reports.append(orchestrate(seeded.engine, SETTINGS))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(r.new_tasks for r in reports) == [0, 0, 60]
    rows = tasks(seeded)
    assert len(rows) == 60
    pairs = [(t["input_id"], t["routine"]) for t in rows if t["input_id"] is not None]
    assert len(pairs) == len(set(pairs)) == 30
    successors = [t["preceding"] for t in rows if t["routine"] == SUCCESSOR]
    assert len(successors) == len(set(successors)) == 30
    assert_within_capacity(seeded)
    # VMs of the losing runs' plans were not left behind
    used = {t["vm"] for t in rows}
    assert {name for (name,) in sql(seeded, "SELECT name FROM processing.virtual_machine")} == used


def test_unplaceable_tasks_keep_a_row_without_vm_and_say_why(seeded: WarehouseResource) -> None:
    sql(
        seeded,
        "INSERT INTO processing.processing_routine (name, cpu, ram_mb, storage_gb, "
        "expected_duration_s, docker_image, input_product_type, output_product_type) "
        "VALUES ('huge', 2, 262144, 10, 60, 'img', 'BIG', 'BIG_OUT')",
    )
    (big,) = add_inputs(seeded, 1, product_type="BIG", prefix="big")
    add_inputs(seeded, 3)
    report = orchestrate(seeded.engine, SETTINGS)

    (unplaced,) = report.unplaced
    assert (unplaced.input_id, unplaced.routine) == (big, "huge")
    assert "RAM" in unplaced.reason and "largest flavour" in unplaced.reason
    (row,) = [t for t in tasks(seeded) if t["routine"] == "huge"]
    assert row["vm"] is None and row["start"] is None
    assert row["unplaced_reason"] == unplaced.reason
    assert report.planned_tasks == 6

    # the launcher never sees it; the next run tries again and still reports it
    assert (
        sql(seeded, "SELECT count(*) FROM processing.ready_task WHERE task_id = %s", row["id"])[0][
            0
        ]
        == 0
    )
    again = orchestrate(seeded.engine, SETTINGS)
    assert [u.task_id for u in again.unplaced] == [row["id"]]


def test_limits_name_the_limit_and_a_larger_limit_places_the_rest(
    seeded: WarehouseResource,
) -> None:
    add_inputs(seeded, 40)
    tight = orchestrate(seeded.engine, OrchestratorSettings(max_vms=1, horizon_s=3600))
    assert tight.unplaced, "one VM for an hour cannot hold 40 chains"
    assert tight.vms_used == 1
    assert all("max_vms=1 reached" in u.reason or "unplaced" in u.reason for u in tight.unplaced)
    assert any("max_vms=1 reached" in u.reason for u in tight.unplaced)
    assert len(tasks(seeded)) == 80  # every pair has its row, placed or not
    assert_within_capacity(seeded)

    short = orchestrate(seeded.engine, OrchestratorSettings(max_vms=20, horizon_s=1200))
    assert {u.routine for u in short.unplaced} == {SUCCESSOR}
    assert any("horizon" in u.reason for u in short.unplaced)

    roomy = orchestrate(seeded.engine, SETTINGS)
    assert roomy.unplaced == [] and roomy.planned_tasks == 80
    assert_within_capacity(seeded)


def test_a_product_input_joins_the_successor_planned_for_it(seeded: WarehouseResource) -> None:
    (input_id,) = add_inputs(seeded, 1)
    orchestrate(seeded.engine, SETTINGS)
    head = next(t for t in tasks(seeded) if t["routine"] == HEAD)
    start(seeded, head["id"], "processed")
    product = sql(
        seeded,
        "INSERT INTO processing.product (task_id, path, product_type) "
        "VALUES (%s, '/products/NDVI/task-1', 'NDVI') RETURNING id",
        head["id"],
    )[0][0]
    harvested = sql(
        seeded,
        "INSERT INTO processing.input (product_type, catalogue_id, name, path, source, "
        "source_product_id) VALUES ('NDVI', %s, 'task-1', '/products/NDVI/task-1', 'product', %s) "
        "RETURNING id",
        f"product:{product}",
        product,
    )[0][0]

    report = orchestrate(seeded.engine, SETTINGS)
    assert report.adopted_inputs == 1 and report.new_tasks == 0
    (successor,) = [t for t in tasks(seeded) if t["routine"] == SUCCESSOR]
    assert successor["input_id"] == harvested
    assert successor["upstream_product_id"] == product
    assert successor["preceding"] == head["id"] and successor["vm"] == head["vm"]
    assert len(tasks(seeded)) == 2
    del input_id


def test_successors_of_a_task_that_failed_for_good_are_blocked(seeded: WarehouseResource) -> None:
    add_inputs(seeded, 1)
    orchestrate(seeded.engine, SETTINGS)
    head = next(t for t in tasks(seeded) if t["routine"] == HEAD)
    sql(seeded, "UPDATE processing.processing_routine SET max_attempts = 1 WHERE name = %s", HEAD)
    start(seeded, head["id"], "internal_error")

    report = orchestrate(seeded.engine, SETTINGS)
    (blocked,) = report.blocked
    assert "failed after its last attempt" in blocked.reason
    (successor,) = [t for t in tasks(seeded) if t["routine"] == SUCCESSOR]
    assert successor["vm"] is None and successor["unplaced_reason"] == blocked.reason


def test_settings_come_from_the_environment_at_call_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FISHNET_MAX_VMS", "3")
    monkeypatch.setenv("FISHNET_PLANNING_HORIZON_HOURS", "2")
    assert settings_from_env() == OrchestratorSettings(max_vms=3, horizon_s=7200)
    assert settings_from_env(max_vms=5).max_vms == 5
    monkeypatch.delenv("FISHNET_MAX_VMS")
    assert settings_from_env().max_vms == 20
