"""Shared helpers of the orchestrator, launcher and chain tests (plain functions, no fixtures)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from dagster import DagsterInstance, SensorDefinition, SensorResult, build_sensor_context

from platform_assets.samples import processing as sample
from resources.warehouse import WarehouseResource

T = TypeVar("T")

HEAD = "s2_l2a_to_ndvi"
SUCCESSOR = "ndvi_to_composite"


def seed(warehouse: WarehouseResource) -> None:
    """The sample flavours (m4, m16) and routines s2_l2a_to_ndvi -> ndvi_to_composite."""
    sample.prepare_demo(warehouse)


def sql(warehouse: WarehouseResource, query: str, *params: Any) -> list[tuple]:
    """Run one statement in its own committed transaction; its rows (if any)."""
    with warehouse.connect() as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def add_inputs(
    warehouse: WarehouseResource, count: int, product_type: str = "S2MSI2A", prefix: str = "in"
) -> list[int]:
    """Catalogue inputs `<prefix>-<n>` with a path; their ids."""
    ids = []
    for n in range(count):
        name = f"{prefix}-{n}"
        ids.append(
            sql(
                warehouse,
                "INSERT INTO processing.input (product_type, catalogue_id, name, path, source) "
                "VALUES (%s, %s, %s, %s, 'catalogue') RETURNING id",
                product_type,
                name,
                name,
                f"/eodata/{name}.SAFE",
            )[0][0]
        )
    return ids


def tasks(warehouse: WarehouseResource) -> list[dict[str, Any]]:
    """Every task with its VM name, as dicts, by id."""
    rows = sql(
        warehouse,
        """
        SELECT t.id, t.input_id, t.routine, v.name, t.planned_start, t.planned_end,
               t.preceding_task_id, t.unplaced_reason, t.upstream_product_id
        FROM processing.processing_task t
        LEFT JOIN processing.virtual_machine v ON v.id = t.virtual_machine_id
        ORDER BY t.id
        """,
    )
    keys = (
        "id",
        "input_id",
        "routine",
        "vm",
        "start",
        "end",
        "preceding",
        "unplaced_reason",
        "upstream_product_id",
    )
    return [dict(zip(keys, row, strict=True)) for row in rows]


def assert_within_capacity(warehouse: WarehouseResource) -> None:
    """At every instant, the planned tasks of each VM fit its capacity; chains are in order."""
    rows = sql(
        warehouse,
        """
        SELECT v.name, v.cpu, v.ram_mb, v.storage_gb, t.planned_start, t.planned_end,
               r.cpu, r.ram_mb, r.storage_gb
        FROM processing.processing_task t
        JOIN processing.virtual_machine v ON v.id = t.virtual_machine_id
        JOIN processing.processing_routine r ON r.name = t.routine
        WHERE t.planned_start IS NOT NULL
        """,
    )
    events: dict[str, list[tuple[Any, int, tuple[float, float, float]]]] = defaultdict(list)
    capacity: dict[str, tuple[float, float, float]] = {}
    for vm, cpu, ram, storage, start, end, tcpu, tram, tstorage in rows:
        capacity[vm] = (cpu, ram, storage)
        events[vm].append((start, 1, (tcpu, tram, tstorage)))
        events[vm].append((end, 0, (tcpu, tram, tstorage)))  # ends sort before starts
    for vm, items in events.items():
        load = [0.0, 0.0, 0.0]
        for _, kind, need in sorted(items, key=lambda e: (e[0], e[1])):
            sign = 1 if kind == 1 else -1
            load = [a + sign * b for a, b in zip(load, need, strict=True)]
            for used, cap in zip(load, capacity[vm], strict=True):
                assert used <= cap + 1e-6, f"{vm} over capacity: {load} > {capacity[vm]}"
    by_id = {t["id"]: t for t in tasks(warehouse)}
    # a processed predecessor ended when its status says so (its product exists), whatever its
    # planned end was: its successor may start from then on
    processed_at = dict(
        sql(
            warehouse,
            "SELECT task_id, at FROM processing.task_last_status WHERE status = 'processed'",
        )
    )
    for task in by_id.values():
        before = by_id.get(task["preceding"])
        if before is None or task["start"] is None or before["end"] is None:
            continue
        ended = min(before["end"], processed_at.get(before["id"], before["end"]))
        assert task["start"] >= ended, f"task {task['id']} starts before its predecessor"


def poll_until(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {timeout} s (last: {value!r})")
        time.sleep(interval)


def tick(
    sensor: SensorDefinition,
    instance: DagsterInstance,
    resources: dict[str, Any],
    cursor: str | None = None,
) -> SensorResult:
    """One sensor evaluation, as the daemon runs it; always a SensorResult."""
    with build_sensor_context(
        cursor=cursor, instance=instance, resources=resources, sensor_name=sensor.name
    ) as context:
        result = sensor(context)
    if not isinstance(result, SensorResult):
        from dagster import RunRequest, SkipReason

        if isinstance(result, RunRequest):
            return SensorResult(run_requests=[result], cursor=cursor)
        if isinstance(result, SkipReason):
            return SensorResult(skip_reason=result, cursor=cursor)
        raise TypeError(f"unexpected sensor result {result!r}")
    return result


def output_metadata(result: Any, step: str) -> dict[str, Any]:
    """The metadata of a step's successful output."""
    (event,) = [e for e in result.all_events if e.is_successful_output and e.step_key == step]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def launcher_run_in_process(
    database_url: str, nomad_address: str, products_dir: str, start: Any, results: Any
) -> None:
    """A `processing_launcher_job` run in its own process, as Dagster runs launch; for races.

    Runs in a spawned process: Dagster's in-process execution configures logging and is not safe
    to run from two threads at once. Waits on `start` (a multiprocessing barrier), then puts
    ("ok", dispatched count) or ("error", message) on `results`.
    """
    try:
        from dagster import DagsterInstance

        from platform_assets.processing.jobs import processing_launcher_job
        from resources.launcher import LauncherResource
        from resources.publisher import DryRunResource

        resources = {
            "warehouse": WarehouseResource(database_url=database_url),
            "launcher": LauncherResource(nomad_address=nomad_address, products_dir=products_dir),
            "dry_run": DryRunResource(),
        }
        with DagsterInstance.ephemeral() as instance:
            start.wait(60)
            result = processing_launcher_job.execute_in_process(
                instance=instance, resources=resources
            )
        results.put(("ok", output_metadata(result, "launch_ready_tasks")["dispatched"]))
    except BaseException as exc:  # reported to the test
        results.put(("error", repr(exc)))


def race_launcher_runs(
    warehouse: WarehouseResource, nomad_address: str, products_dir: str, runs: int = 2
) -> list[int]:
    """Start `runs` launcher runs in separate processes at the same moment; their dispatch counts."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(runs)
    results = context.Queue()
    database_url = warehouse.urls.libpq
    processes = [
        context.Process(
            target=launcher_run_in_process,
            args=(database_url, nomad_address, products_dir, start, results),
        )
        for _ in range(runs)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    errors = [message for kind, message in outcomes if kind == "error"]
    assert errors == [], errors
    return sorted(count for _, count in outcomes)
