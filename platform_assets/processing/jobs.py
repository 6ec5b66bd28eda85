"""Jobs, schedules and change-feed sensors of the processing chain.

    harvest -> processing.input --(new inputs sensor)--> orchestrator -> processing_task
    processing_task / 'processed' status --(ready tasks sensor)--> launcher -> Nomad
    processing.product --(new products sensor)--> harvest (products become inputs)

The orchestrator and launcher are stubs until part 2: they count what they would plan or launch,
so the sensors have real targets. Every job is state-based: it acts on all rows that need it, the
change batch that started it is only a tag (`fishnet/change_batch`).
"""

# No `from __future__ import annotations` here: Dagster reads these annotations (config and
# resource parameters) when the definitions are built.
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from dagster import (
    Config,
    DefaultScheduleStatus,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    ScheduleDefinition,
    define_asset_job,
    job,
    op,
)

from platform_assets.processing.assets import INPUT_ASSET_KEY
from platform_assets.processing.change_feed import prune
from resources.warehouse import WarehouseResource
from sensors.change_feed import BATCH_TAG, change_feed_sensor

NEW_INPUTS_SENSOR = "processing_new_inputs_sensor"
READY_TASKS_SENSOR = "processing_ready_tasks_sensor"
NEW_PRODUCTS_SENSOR = "processing_new_products_sensor"
CHANGE_FEED_CONSUMERS = (NEW_INPUTS_SENSOR, READY_TASKS_SENSOR, NEW_PRODUCTS_SENSOR)
"""Every change-feed consumer defined in code: pruning keeps what the slowest still needs."""

UNPLANNED_INPUTS = sa.text(
    """
    SELECT count(DISTINCT i.id) AS inputs, count(*) AS tasks
    FROM processing.input i
    JOIN processing.processing_routine r ON r.input_product_type = i.product_type
    WHERE NOT EXISTS (
        SELECT 1 FROM processing.processing_task t WHERE t.input_id = i.id AND t.routine = r.name
    )
    """
)

READY_TASKS = sa.text(
    """
    SELECT count(*) FROM processing.processing_task t
    WHERE NOT EXISTS (SELECT 1 FROM processing.nomad_job_dispatch d WHERE d.task_id = t.id)
      AND (
        t.preceding_task_id IS NULL
        OR EXISTS (
            SELECT 1 FROM processing.task_last_status s
            WHERE s.task_id = t.preceding_task_id AND s.status = 'processed'
        )
      )
    """
)


@op(out=Out(Nothing), description="Plans a task for every input a routine takes (stub: counts).")
def plan_processing_tasks(context: OpExecutionContext, warehouse: WarehouseResource):
    """Count the (input, routine) pairs without a task: what part 2's planner will place on VMs."""
    with warehouse.engine.connect() as conn:
        inputs, tasks = conn.execute(UNPLANNED_INPUTS).one()
    context.log.info(
        f"would plan {tasks} task(s) for {inputs} pending input(s) "
        f"(change batch {context.run.tags.get(BATCH_TAG, 'none')})"
    )
    yield Output(None, metadata={"pending_inputs": inputs, "tasks_to_plan": tasks})


@op(out=Out(Nothing), description="Starts a Nomad job for every ready task (stub: counts).")
def launch_ready_tasks(context: OpExecutionContext, warehouse: WarehouseResource):
    """Count tasks with no dispatch whose preceding task (if any) is processed."""
    with warehouse.engine.connect() as conn:
        ready = conn.execute(READY_TASKS).scalar_one()
    context.log.info(
        f"would launch {ready} ready task(s) (change batch {context.run.tags.get(BATCH_TAG, 'none')})"
    )
    yield Output(None, metadata={"ready_tasks": ready})


@job(description="Plans processing tasks for new inputs (started by the new-inputs sensor).")
def processing_orchestrator_job() -> None:
    plan_processing_tasks()


@job(description="Launches ready processing tasks (started by the ready-tasks sensor).")
def processing_launcher_job() -> None:
    launch_ready_tasks()


processing_harvest_job = define_asset_job(
    "processing_harvest_job",
    selection=[INPUT_ASSET_KEY],
    description="Harvests new inputs from the catalogue and from our products.",
)


class PruneConfig(Config):
    """How long recorded batches stay for people once no cursor can come back to them."""

    keep_batches_hours: float = 24.0


@op(out=Out(Nothing), description="Deletes change events every change-feed sensor has passed.")
def prune_change_feed(
    context: OpExecutionContext, config: PruneConfig, warehouse: WarehouseResource
):
    """Prune `ops.change_event` below the slowest consumer and old `ops.change_feed_batch` rows."""
    with warehouse.connect(autocommit=True) as conn:
        result = prune(
            conn, CHANGE_FEED_CONSUMERS, keep_batches=timedelta(hours=config.keep_batches_hours)
        )
    if result.missing_consumers:
        context.log.warning(
            "kept every change event: no recorded position yet for "
            + ", ".join(result.missing_consumers)
            + " (a sensor that never ticked, or is stopped)"
        )
    context.log.info(
        f"deleted {result.events_deleted} change event(s) below xmin {result.watermark}, "
        f"{result.batches_deleted} batch record(s)"
    )
    yield Output(
        None,
        metadata={
            "events_deleted": result.events_deleted,
            "batches_deleted": result.batches_deleted,
            "watermark": str(result.watermark),
            "missing_consumers": ", ".join(result.missing_consumers) or "none",
        },
    )


@job(description="Prunes the change-feed outbox (ops.change_event) and old batch records.")
def processing_change_feed_prune_job() -> None:
    prune_change_feed()


harvest_schedule = ScheduleDefinition(
    name="processing_harvest_schedule",
    job=processing_harvest_job,
    cron_schedule="*/15 * * * *",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Looks for new catalogue products every 15 minutes.",
)

prune_schedule = ScheduleDefinition(
    name="processing_change_feed_prune_schedule",
    job=processing_change_feed_prune_job,
    cron_schedule="17 * * * *",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Prunes the change-feed outbox hourly.",
)

new_inputs_sensor = change_feed_sensor(
    NEW_INPUTS_SENSOR,
    tables=["processing.input"],
    operations=["INSERT"],
    job=processing_orchestrator_job,
    description="Starts the orchestrator when inputs are registered.",
)

ready_tasks_sensor = change_feed_sensor(
    READY_TASKS_SENSOR,
    tables=["processing.processing_task", "processing.processing_status"],
    operations=["INSERT"],
    job=processing_launcher_job,
    # a status only matters when it is 'processed' and some task waits for that task
    filter="""
        e.table_name = 'processing.processing_task'
        OR EXISTS (
            SELECT 1 FROM processing.processing_status s
            JOIN processing.processing_task nxt ON nxt.preceding_task_id = s.task_id
            WHERE s.id = e.row_key AND s.status = 'processed'
        )
    """,
    description="Starts the launcher when tasks are planned or a preceding task is processed.",
)

new_products_sensor = change_feed_sensor(
    NEW_PRODUCTS_SENSOR,
    tables=["processing.product"],
    operations=["INSERT"],
    job=processing_harvest_job,
    run_config={"ops": {"processing__input": {"config": {"sources": ["product"]}}}},
    description="Harvests new products as inputs of the next routine.",
)

PROCESSING_JOBS: list[Any] = [
    processing_harvest_job,
    processing_orchestrator_job,
    processing_launcher_job,
    processing_change_feed_prune_job,
]
PROCESSING_SCHEDULES = [harvest_schedule, prune_schedule]
PROCESSING_SENSORS = [new_inputs_sensor, ready_tasks_sensor, new_products_sensor]
