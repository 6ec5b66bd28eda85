"""The processing chain's change-feed sensors, evaluated like the daemon does, on real PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, SensorDefinition, SensorResult, build_sensor_context

from platform_assets.processing import sample
from platform_assets.processing.jobs import (
    CHANGE_FEED_CONSUMERS,
    NEW_INPUTS_SENSOR,
    new_inputs_sensor,
    new_products_sensor,
    processing_change_feed_prune_job,
    processing_launcher_job,
    processing_orchestrator_job,
    ready_tasks_sensor,
)
from resources.warehouse import WarehouseResource
from sensors.change_feed import BATCH_TAG, WAIT_SECONDS_ENV, change_feed_sensor


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ticks return at once unless a test asks them to wait."""
    monkeypatch.setenv(WAIT_SECONDS_ENV, "0")


@pytest.fixture
def sql(warehouse: WarehouseResource) -> Iterator[psycopg.Connection]:
    """Plain SQL, autocommit, as someone with psql would type it."""
    with warehouse.connect(autocommit=True) as conn:
        yield conn


def tick(
    sensor: SensorDefinition,
    instance: DagsterInstance,
    warehouse: WarehouseResource,
    cursor: str | None = None,
) -> SensorResult:
    """One evaluation, as the daemon runs it."""
    with build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={"warehouse": warehouse},
        sensor_name=sensor.name,
    ) as context:
        result = sensor(context)
    assert isinstance(result, SensorResult)
    return result


def add_input(sql: psycopg.Connection, name: str = "S2B_MSIL2A_20260310T105029_T31TCJ") -> int:
    row = sql.execute(
        "INSERT INTO processing.input (product_type, catalogue_id, name, source) "
        "VALUES ('S2MSI2A', %s, %s, 'catalogue') RETURNING id",
        (name, name),
    ).fetchone()
    assert row is not None
    return row[0]


def add_task(
    sql: psycopg.Connection, input_id: int | None, routine: str, preceding: int | None = None
) -> int:
    row = sql.execute(
        "INSERT INTO processing.processing_task (input_id, routine, preceding_task_id) "
        "VALUES (%s, %s, %s) RETURNING id",
        (input_id, routine, preceding),
    ).fetchone()
    assert row is not None
    return row[0]


def add_status(sql: psycopg.Connection, task_id: int, status: str) -> None:
    sql.execute(
        "INSERT INTO processing.processing_status (task_id, status) VALUES (%s, %s)",
        (task_id, status),
    )


def test_an_input_inserted_by_hand_requests_the_orchestrator(
    dagster_instance: DagsterInstance, warehouse: WarehouseResource, sql: psycopg.Connection
) -> None:
    assert new_inputs_sensor.job_name == processing_orchestrator_job.name
    empty = tick(new_inputs_sensor, dagster_instance, warehouse)
    assert empty.run_requests == []
    assert empty.skip_reason is not None

    add_input(sql)
    result = tick(new_inputs_sensor, dagster_instance, warehouse, empty.cursor)
    (request,) = result.run_requests
    batch_id = request.tags[BATCH_TAG]
    assert request.run_key == f"{NEW_INPUTS_SENSOR}:{batch_id}"
    assert json.loads(result.cursor or "")["xmin"] != "0"

    # the sensor's position is recorded for pruning at the start of each tick
    again = tick(new_inputs_sensor, dagster_instance, warehouse, result.cursor)
    assert again.run_requests == []
    (position,) = sql.execute(
        "SELECT watermark::text FROM ops.change_feed_consumer WHERE consumer = %s",
        (NEW_INPUTS_SENSOR,),
    ).fetchall()
    assert position[0] == json.loads(result.cursor or "")["xmin"]


def test_a_retried_tick_reemits_the_same_run_request(
    dagster_instance: DagsterInstance, warehouse: WarehouseResource, sql: psycopg.Connection
) -> None:
    add_input(sql, "first")
    stored = tick(new_inputs_sensor, dagster_instance, warehouse).cursor
    add_input(sql, "second")
    lost = tick(new_inputs_sensor, dagster_instance, warehouse, stored)  # cursor never stored
    add_input(sql, "third")
    retried = tick(new_inputs_sensor, dagster_instance, warehouse, stored)
    assert retried.run_requests[0].run_key == lost.run_requests[0].run_key
    assert retried.cursor == lost.cursor
    following = tick(new_inputs_sensor, dagster_instance, warehouse, retried.cursor)
    assert following.run_requests[0].run_key != lost.run_requests[0].run_key
    assert following.run_requests[0].tags["fishnet/change_events"] == "1"


def test_a_notification_during_the_wait_wakes_the_tick(
    dagster_instance: DagsterInstance, warehouse: WarehouseResource, sql: psycopg.Connection
) -> None:
    waiting = change_feed_sensor(
        "waiting_inputs_sensor",
        tables=["processing.input"],
        operations=["INSERT"],
        job=processing_orchestrator_job,
        wait_seconds=30,
    )
    cursor = tick(new_inputs_sensor, dagster_instance, warehouse).cursor  # nothing yet

    def insert_later() -> None:
        with warehouse.connect(autocommit=True) as conn:
            add_input(conn, "arrives-while-waiting")

    timer = threading.Timer(0.3, insert_later)
    timer.start()
    try:
        result = tick(waiting, dagster_instance, warehouse, cursor)
    finally:
        timer.join()
    # without the wake-up the tick would have waited 30 s and returned nothing: its only read
    # happened before the insert
    (request,) = result.run_requests
    assert request.tags["fishnet/change_events"] == "1"


def test_ready_tasks_sensor_reacts_to_tasks_and_processed_predecessors(
    dagster_instance: DagsterInstance, warehouse: WarehouseResource, sql: psycopg.Connection
) -> None:
    sample.prepare_demo(warehouse)
    assert ready_tasks_sensor.job_name == processing_launcher_job.name
    input_id = add_input(sql)
    first = add_task(sql, input_id, "s2_l2a_to_ndvi")
    lone = add_task(sql, add_input(sql, "other"), "s2_l2a_to_ndvi")
    add_task(sql, None, "ndvi_to_composite", preceding=first)
    planned = tick(ready_tasks_sensor, dagster_instance, warehouse)
    assert planned.run_requests[0].tags["fishnet/change_events"] == "3"

    # statuses nobody waits for start nothing
    add_status(sql, first, "started")
    add_status(sql, lone, "processed")
    idle = tick(ready_tasks_sensor, dagster_instance, warehouse, planned.cursor)
    assert idle.run_requests == []

    add_status(sql, first, "processed")  # the composite task can start now
    ready = tick(ready_tasks_sensor, dagster_instance, warehouse, idle.cursor)
    (request,) = ready.run_requests
    assert request.tags["fishnet/change_events"] == "1"


def test_new_products_request_a_product_harvest(
    dagster_instance: DagsterInstance, warehouse: WarehouseResource, sql: psycopg.Connection
) -> None:
    sample.prepare_demo(warehouse)
    task = add_task(sql, add_input(sql), "s2_l2a_to_ndvi")
    sql.execute(
        "INSERT INTO processing.product (task_id, path, product_type) "
        "VALUES (%s, '/products/ndvi/T31TCJ_20260310.tif', 'NDVI')",
        (task,),
    )
    (request,) = tick(new_products_sensor, dagster_instance, warehouse).run_requests
    assert new_products_sensor.job_name == "processing_harvest_job"
    assert request.run_config == {
        "ops": {"processing__input": {"config": {"sources": ["product"]}}}
    }


def _execute(
    job: Any, instance: DagsterInstance, warehouse: WarehouseResource, tags: dict[str, str]
) -> Any:
    return job.execute_in_process(
        instance=instance, resources={"warehouse": warehouse}, tags=tags, raise_on_error=True
    )


def output_metadata(result: Any, step: str) -> dict[str, Any]:
    (event,) = [e for e in result.all_events if e.is_successful_output and e.step_key == step]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def test_stub_jobs_count_what_they_would_do(
    dagster_instance: DagsterInstance, warehouse: WarehouseResource, sql: psycopg.Connection
) -> None:
    sample.prepare_demo(warehouse)
    planned_input = add_input(sql, "planned")
    add_input(sql, "pending")
    add_task(sql, planned_input, "s2_l2a_to_ndvi")
    requested = tick(new_inputs_sensor, dagster_instance, warehouse).run_requests[0]

    result = _execute(
        processing_orchestrator_job, dagster_instance, warehouse, dict(requested.tags)
    )
    assert output_metadata(result, "plan_processing_tasks") == {
        "pending_inputs": 1,
        "tasks_to_plan": 1,
    }
    result = _execute(processing_launcher_job, dagster_instance, warehouse, {})
    assert output_metadata(result, "launch_ready_tasks") == {"ready_tasks": 1}


def test_prune_job_waits_for_every_sensor(
    dagster_instance: DagsterInstance, warehouse: WarehouseResource, sql: psycopg.Connection
) -> None:
    add_input(sql)
    result = _execute(processing_change_feed_prune_job, dagster_instance, warehouse, {})
    assert output_metadata(result, "prune_change_feed")["events_deleted"] == 0

    sensors = {
        new_inputs_sensor.name: new_inputs_sensor,
        ready_tasks_sensor.name: ready_tasks_sensor,
    }
    sensors[new_products_sensor.name] = new_products_sensor
    assert set(sensors) == set(CHANGE_FEED_CONSUMERS)
    for sensor in sensors.values():  # first tick records, second tick stores the moved cursor
        cursor = tick(sensor, dagster_instance, warehouse).cursor
        tick(sensor, dagster_instance, warehouse, cursor)
    result = _execute(processing_change_feed_prune_job, dagster_instance, warehouse, {})
    assert output_metadata(result, "prune_change_feed")["events_deleted"] == 1


def test_domain_definitions_tick_like_the_demo(
    dagster_instance: DagsterInstance, warehouse: WarehouseResource, sql: psycopg.Connection
) -> None:
    """The domain's `defs`, with the shared resources, ticks through Dagster's own evaluation.

    Like the daemon, resources come from the repository: in Dagster 1.13 `build_sensor_context`
    does not take them from `definitions`.
    """
    from dagster import Definitions

    from platform_assets.processing import defs

    merged = Definitions.merge(defs, Definitions(resources={"warehouse": warehouse}))
    add_input(sql)
    sensor = merged.resolve_sensor_def(NEW_INPUTS_SENSOR)
    resources = merged.get_repository_def().get_top_level_resources()
    with build_sensor_context(
        instance=dagster_instance, definitions=merged, sensor_name=sensor.name, resources=resources
    ) as context:
        data = sensor.evaluate_tick(context)
    (request,) = data.run_requests
    job = merged.resolve_job_def(sensor.job_name)
    result = job.execute_in_process(
        instance=dagster_instance, tags=request.tags, run_config=request.run_config
    )
    assert result.success
