"""The processing chain's change-feed sensors, evaluated like the daemon does, on real PostgreSQL."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorResult,
    build_sensor_context,
)

from platform_assets.change_feed.feed import Batch, FeedCursor
from platform_assets.change_feed.lanes import consumer_position, lane_name
from platform_assets.change_feed.tags import BATCH_TAG, CONSUMER_TAG, RUN_KEY_TAG
from platform_assets.processing.jobs import (
    CHANGE_FEED_CONSUMERS,
    CHANGE_FEED_LANES,
    NEW_INPUTS_SENSOR,
    NEW_PRODUCTS_SENSOR,
    READY_TASKS_SENSOR,
    processing_change_feed_prune_job,
    processing_launcher_job,
    processing_orchestrator_job,
)
from platform_assets.samples import processing as sample
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource
from sensors.change_feed import (
    DEFAULT_REEMIT_GRACE_SECONDS,
    WAIT_SECONDS_ENV,
    change_feed_sensor,
    change_feed_sensors,
    run_request_for_batch,
)
from sensors.processing import PROCESSING_SENSORS

BY_NAME = {s.name: s for s in PROCESSING_SENSORS}
new_inputs_sensor = BY_NAME[NEW_INPUTS_SENSOR]
ready_tasks_sensor = BY_NAME[READY_TASKS_SENSOR]
new_products_sensor = BY_NAME[NEW_PRODUCTS_SENSOR]
SENSOR_TAG = "test/submitted_by_sensor"
"""Which sensor submitted a run in the `Daemon` simulation (the daemon de-duplicates run keys
per sensor)."""


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ticks return at once unless a test asks them to wait."""
    monkeypatch.setenv(WAIT_SECONDS_ENV, "0")


@pytest.fixture
def fresh_instance() -> Iterator[DagsterInstance]:
    """A Dagster instance of the test's own: no run of another test's database in the way
    (batch ids, hence run keys, start again in each test database)."""
    with DagsterInstance.ephemeral() as instance:
        yield instance


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
    # the position is the consumer's, in the database; the lane's cursor counts emitting ticks
    position = consumer_position(sql, NEW_INPUTS_SENSOR)
    assert position is not None and position.xmin != 0
    assert json.loads(result.cursor or "")["lane_tick"] == 1

    # the position is what pruning goes by
    again = tick(new_inputs_sensor, dagster_instance, warehouse, result.cursor)
    assert again.run_requests == []
    (watermark,) = sql.execute(
        "SELECT watermark::text FROM ops.change_feed_consumer WHERE consumer = %s",
        (NEW_INPUTS_SENSOR,),
    ).fetchall()
    now = consumer_position(sql, NEW_INPUTS_SENSOR)
    assert now is not None and watermark[0] == str(now.xmin) and now.xmin >= position.xmin


def test_a_retried_tick_reemits_the_same_run_request(
    warehouse: WarehouseResource, sql: psycopg.Connection, fresh_instance: DagsterInstance
) -> None:
    instance = fresh_instance
    add_input(sql, "first")
    stored = tick(new_inputs_sensor, instance, warehouse).cursor
    add_input(sql, "second")
    lost = tick(new_inputs_sensor, instance, warehouse, stored)  # cursor never stored
    add_input(sql, "third")
    retried = tick(new_inputs_sensor, instance, warehouse, stored)
    assert retried.run_requests[0].run_key == lost.run_requests[0].run_key
    assert retried.run_requests[0].tags == lost.run_requests[0].tags
    assert (
        json.loads(retried.cursor or "")["lane_tick"] == json.loads(lost.cursor or "")["lane_tick"]
    )
    # the retried tick also claims what came meanwhile, in a batch of its own
    (following,) = retried.run_requests[1:]
    assert following.run_key != lost.run_requests[0].run_key
    assert following.tags["fishnet/change_events"] == "1"
    assert tick(new_inputs_sensor, instance, warehouse, retried.cursor).run_requests == []


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
        instance=instance,
        resources={"warehouse": warehouse, "dry_run": DryRunResource()},
        tags=tags,
        raise_on_error=True,
    )


def output_metadata(result: Any, step: str) -> dict[str, Any]:
    (event,) = [e for e in result.all_events if e.is_successful_output and e.step_key == step]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


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

    from platform_assets.processing.definitions import defs
    from resources import build_resources

    resources = {**build_resources(), "warehouse": warehouse}
    merged = Definitions.merge(defs, Definitions(sensors=PROCESSING_SENSORS, resources=resources))
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


# --- lanes: several sensors of one consumer, one position in the database ------------------------


class Daemon:
    """Ticks sensors the way the daemon does, and can die at the moments that matter.

    A tick is evaluated, its run requests are submitted (a run key already used by a run of the
    same sensor starts nothing, as the daemon does), then its
    cursor is stored. `die`: "before_submission" (our transaction committed, Dagster got nothing),
    "before_cursor" (runs created, cursor not stored), "no_submission" (cursor stored, no run: a
    sensor stopped mid-submission, a preview).
    """

    def __init__(self, instance: DagsterInstance, warehouse: WarehouseResource) -> None:
        self.instance = instance
        self.warehouse = warehouse
        self.cursors: dict[str, str | None] = {}
        self.deduplicated = 0

    def tick(self, sensor: SensorDefinition, die: str | None = None) -> list[RunRequest]:
        result = tick(sensor, self.instance, self.warehouse, self.cursors.get(sensor.name))
        requests = list(result.run_requests or [])
        if die in ("before_submission", "no_submission"):
            if die == "no_submission":
                self.cursors[sensor.name] = result.cursor
            return requests
        for request in requests:
            self.submit(sensor.name, request)
        if die != "before_cursor":
            self.cursors[sensor.name] = result.cursor
        return requests

    def submit(self, sensor_name: str, request: RunRequest) -> None:
        assert request.run_key is not None
        same_key = self.instance.get_runs(RunsFilter(tags={RUN_KEY_TAG: request.run_key}))
        if any(run.tags.get(SENSOR_TAG) == sensor_name for run in same_key):
            self.deduplicated += 1
            return
        self.instance.add_run(
            DagsterRun(
                job_name=processing_orchestrator_job.name,
                run_id=str(uuid.uuid4()),
                tags={**request.tags, SENSOR_TAG: sensor_name},
                status=DagsterRunStatus.NOT_STARTED,
            )
        )

    def delivered(self, sql: psycopg.Connection, consumer: str) -> list[int]:
        """Input ids of every run of `consumer`, once per run (a row twice = handled twice)."""
        runs = self.instance.get_runs(RunsFilter(tags={CONSUMER_TAG: consumer}))
        keys = [run.tags[RUN_KEY_TAG] for run in runs]
        assert len(keys) == len(set(keys)), "two runs with one run key"
        batches = dict(sql.execute("SELECT batch_id, event_ids FROM ops.change_feed_batch"))
        row_of = dict(sql.execute("SELECT id, row_key FROM ops.change_event"))
        return sorted(row_of[e] for run in runs for e in batches[int(run.tags[BATCH_TAG])])


def input_lanes(consumer: str, lanes: int = 3, **kwargs: Any) -> list[SensorDefinition]:
    return change_feed_sensors(
        consumer,
        ["processing.input"],
        ["INSERT"],
        job=processing_orchestrator_job,
        lanes=lanes,
        **kwargs,
    )


def age_batches(sql: psycopg.Connection, seconds: float = 3600) -> None:
    """As if every emission happened `seconds` earlier (past the re-emission grace period)."""
    sql.execute(
        "UPDATE ops.change_feed_batch SET emitted_at = emitted_at - make_interval(secs => %s)",
        (seconds,),
    )


def test_lanes_share_one_position(
    warehouse: WarehouseResource, sql: psycopg.Connection, fresh_instance: DagsterInstance
) -> None:
    lanes = input_lanes("shared_inputs_sensor")
    assert [s.name for s in lanes] == [
        "shared_inputs_sensor",
        "shared_inputs_sensor_lane_2",
        "shared_inputs_sensor_lane_3",
    ]
    daemon = Daemon(fresh_instance, warehouse)
    inserted: list[int] = []
    keys: list[str] = []
    for step in range(9):
        inserted.append(add_input(sql, f"shared-{step}"))
        (request,) = daemon.tick(lanes[(step * 2) % 3])  # any lane takes what is new
        assert request.tags["fishnet/change_events"] == "1"
        keys.append(request.run_key or "")
    assert all(key.startswith("shared_inputs_sensor:") for key in keys)
    for sensor in lanes:
        assert daemon.tick(sensor) == []
    assert daemon.delivered(sql, "shared_inputs_sensor") == inserted


def test_lanes_ticking_at_once_never_deliver_an_event_twice(
    warehouse: WarehouseResource, sql: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four lanes tick in threads, waiting on LISTEN, while a writer commits inputs."""
    monkeypatch.setenv(WAIT_SECONDS_ENV, "0.3")
    lanes = input_lanes("parallel_inputs_sensor", lanes=4, spacing_seconds=0)
    inserted: list[int] = []
    requested: list[RunRequest] = []
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()

    def writer() -> None:
        time.sleep(0.5)  # the lanes are listening
        with warehouse.connect(autocommit=True) as conn:
            for i in range(120):
                ids = [add_input(conn, f"parallel-{i}-{j}") for j in range(1 + i % 3)]
                with lock:
                    inserted.extend(ids)
                time.sleep(0.01)
        writing.clear()

    errors: list[BaseException] = []

    def lane_loop(sensor: SensorDefinition) -> None:
        cursor: str | None = None
        quiet = 0
        try:
            while writing.is_set() or quiet < 2:
                with build_sensor_context(
                    cursor=cursor, resources={"warehouse": warehouse}, sensor_name=sensor.name
                ) as context:
                    result = sensor(context)
                assert isinstance(result, SensorResult)
                cursor = result.cursor
                with lock:
                    requested.extend(result.run_requests or [])
                quiet = 0 if writing.is_set() or result.run_requests else quiet + 1
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
            raise

    threads = [threading.Thread(target=lane_loop, args=(s,)) for s in lanes]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len({r.run_key for r in requested}) == len(requested)  # nothing emitted twice
    batches = dict(sql.execute("SELECT batch_id, event_ids FROM ops.change_feed_batch"))
    row_of = dict(sql.execute("SELECT id, row_key FROM ops.change_event"))
    delivered = [row_of[e] for r in requested for e in batches[int(r.tags[BATCH_TAG])]]
    assert sorted(delivered) == sorted(inserted)
    lanes_used = set(
        sql.execute(
            "SELECT DISTINCT emitted_by FROM ops.change_feed_batch WHERE consumer = %s",
            ("parallel_inputs_sensor",),
        )
    )
    assert len(lanes_used) > 1


def test_a_crash_between_commit_and_submission_loses_nothing(
    warehouse: WarehouseResource, sql: psycopg.Connection, fresh_instance: DagsterInstance
) -> None:
    daemon = Daemon(fresh_instance, warehouse)
    first_lane, second_lane, third_lane = input_lanes("crash_inputs_sensor")
    first = add_input(sql, "first")
    # lane 2 claims `first` in the database, then the daemon dies: Dagster never sees it
    (lost,) = daemon.tick(second_lane, die="before_submission")
    second = add_input(sql, "second")
    (other,) = daemon.tick(first_lane)  # other lanes go on with what is new, never with `first`
    assert other.run_key != lost.run_key
    assert daemon.tick(third_lane) == []
    # lane 2's next tick: its cursor says that tick never completed, so it emits the batch again
    (again,) = daemon.tick(second_lane)
    assert again.run_key == lost.run_key
    assert again.tags == lost.tags
    assert daemon.tick(second_lane) == []

    # died after the run was created but before the cursor was stored: the run is found, the
    # batch is not emitted again
    third = add_input(sql, "third")
    (submitted,) = daemon.tick(third_lane, die="before_cursor")
    assert daemon.tick(third_lane) == []
    (seen,) = sql.execute(
        "SELECT run_seen_at IS NOT NULL FROM ops.change_feed_batch WHERE batch_id = %s",
        (int(submitted.tags[BATCH_TAG]),),
    ).fetchall()
    assert seen == (True,)
    assert daemon.delivered(sql, "crash_inputs_sensor") == [first, second, third]


def test_a_batch_with_no_run_is_emitted_again_after_the_grace_period_by_its_lane(
    warehouse: WarehouseResource, sql: psycopg.Connection, fresh_instance: DagsterInstance
) -> None:
    daemon = Daemon(fresh_instance, warehouse)
    lanes = input_lanes("grace_inputs_sensor")
    add_input(sql)
    # Dagster stored lane 2's cursor but started no run (stopped mid-submission, a preview)
    (request,) = daemon.tick(lanes[1], die="no_submission")
    assert [daemon.tick(s) for s in lanes] == [[], [], []]  # within the grace period
    age_batches(sql, DEFAULT_REEMIT_GRACE_SECONDS + 1)
    assert daemon.tick(lanes[0]) == [] and daemon.tick(lanes[2]) == []  # not theirs
    (again,) = daemon.tick(lanes[1])  # the lane that emitted it: same sensor, same run key
    assert again.run_key == request.run_key
    age_batches(sql, DEFAULT_REEMIT_GRACE_SECONDS + 1)
    assert daemon.tick(lanes[1]) == []  # its run exists now
    (row,) = sql.execute(
        "SELECT emitted_by, emissions, run_seen_at IS NOT NULL FROM ops.change_feed_batch"
    ).fetchall()
    assert row == (lanes[1].name, 2, True)
    assert len(daemon.delivered(sql, "grace_inputs_sensor")) == 1


def test_the_first_lane_adopts_the_batches_of_removed_lanes(
    warehouse: WarehouseResource, sql: psycopg.Connection, fresh_instance: DagsterInstance
) -> None:
    daemon = Daemon(fresh_instance, warehouse)
    three = input_lanes("shrinking_inputs_sensor", lanes=3)
    add_input(sql)
    (lost,) = daemon.tick(three[2], die="before_submission")
    two = input_lanes("shrinking_inputs_sensor", lanes=2)  # lane 3 removed from the code
    assert daemon.tick(two[1]) == []
    (adopted,) = daemon.tick(two[0])
    assert adopted.run_key == lost.run_key
    assert len(daemon.delivered(sql, "shrinking_inputs_sensor")) == 1


def test_lanes_lose_and_double_nothing_across_random_crashes(
    warehouse: WarehouseResource, sql: psycopg.Connection, fresh_instance: DagsterInstance
) -> None:
    daemon = Daemon(fresh_instance, warehouse)
    lanes = input_lanes("random_inputs_sensor")
    rng = random.Random(11)
    inserted: list[int] = []
    deaths = [None] * 5 + ["before_submission", "before_cursor", "no_submission"]
    for step in range(80):
        if rng.random() < 0.7:
            inserted += [add_input(sql, f"random-{step}-{i}") for i in range(rng.randint(1, 3))]
        daemon.tick(rng.choice(lanes), die=rng.choice(deaths))
    # then a quiet daemon: every lane ticks, past the grace period, until nothing comes
    age_batches(sql)
    for _ in range(2):
        for sensor in lanes:
            daemon.tick(sensor)
    assert daemon.delivered(sql, "random_inputs_sensor") == sorted(inserted)
    (emitted_again,) = sql.execute(
        "SELECT count(*) FROM ops.change_feed_batch WHERE emissions > 1"
    ).fetchone()
    assert emitted_again > 0  # the crashes did make lanes emit batches again


def test_processing_consumers_are_declared_as_lanes() -> None:
    by_consumer: dict[str, list[str]] = {}
    feed_sensors = [s for s in PROCESSING_SENSORS if "change_feed_consumer" in s.metadata]
    others = {s.name for s in PROCESSING_SENSORS} - {s.name for s in feed_sensors}
    assert others == {"processing_job_status_sensor"}  # polls Nomad, not the change feed
    for sensor in feed_sensors:
        by_consumer.setdefault(sensor.metadata["change_feed_consumer"].value, []).append(
            sensor.name
        )
    assert set(by_consumer) == set(CHANGE_FEED_CONSUMERS)
    for consumer, names in by_consumer.items():
        assert names == [lane_name(consumer, i) for i in range(1, CHANGE_FEED_LANES + 1)]
    assert new_inputs_sensor.name == NEW_INPUTS_SENSOR
    # run keys are carried in a tag of our own, so looking a batch's run up needs no internals
    batch = Batch(NEW_INPUTS_SENSOR, 7, (1, 2), FeedCursor())
    request = run_request_for_batch(batch)
    assert request.run_key == batch.run_key == request.tags[RUN_KEY_TAG]
