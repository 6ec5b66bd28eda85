"""Jobs, schedules and change-feed sensors of the processing chain.

    harvest -> processing.input --(new inputs sensor)--> orchestrator -> processing_task
    processing_task / 'processed' status --(ready tasks sensor)--> launcher -> Nomad
    processing.product --(new products sensor)--> harvest (products become inputs)

The orchestrator and launcher ops call orchestrate.py and launch.py through chain_ops.py; the
status sensor polls dispatched jobs into processing_status and products. Every job is
state-based: it acts on all rows that need it, the change batch that started it is only a tag
(`fishnet/change_batch`).
"""

# No `from __future__ import annotations` here: Dagster reads these annotations (config and
# resource parameters) when the definitions are built.
from datetime import timedelta
from typing import Any

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
from platform_assets.processing.chain_ops import (
    OrchestratorConfig,
    build_job_status_sensor,
    launch_tasks,
    plan_tasks,
    processing_status_job,
)
from platform_assets.processing.change_feed import prune
from platform_assets.processing.launcher_resource import LauncherResource
from resources.warehouse import WarehouseResource
from sensors.change_feed import change_feed_sensors

NEW_INPUTS_SENSOR = "processing_new_inputs_sensor"
READY_TASKS_SENSOR = "processing_ready_tasks_sensor"
NEW_PRODUCTS_SENSOR = "processing_new_products_sensor"
CHANGE_FEED_CONSUMERS = (NEW_INPUTS_SENSOR, READY_TASKS_SENSOR, NEW_PRODUCTS_SENSOR)
"""Every change-feed consumer defined in code: pruning keeps what the slowest still needs."""
CHANGE_FEED_LANES = 3
"""Sensors per consumer (`<consumer>`, `<consumer>_lane_2`, ...), sharing its position: while one
returns with a batch the others wait on LISTEN (sensors/change_feed.py)."""


@op(out=Out(Nothing), description="Plans a task on a VM for every input a routine takes.")
def plan_processing_tasks(
    context: OpExecutionContext, config: OrchestratorConfig, warehouse: WarehouseResource
):
    """Plan pending inputs onto the fewest VMs (orchestrate.py + planner.py)."""
    yield from plan_tasks(context, config, warehouse)


@op(out=Out(Nothing), description="Starts a Nomad job (or a local process) for every ready task.")
def launch_ready_tasks(
    context: OpExecutionContext, warehouse: WarehouseResource, launcher: LauncherResource
):
    """Dispatch every ready task exactly once (launch.py)."""
    yield from launch_tasks(context, warehouse, launcher)


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

new_inputs_lanes = change_feed_sensors(
    NEW_INPUTS_SENSOR,
    tables=["processing.input"],
    operations=["INSERT"],
    job=processing_orchestrator_job,
    description="Starts the orchestrator when inputs are registered.",
    lanes=CHANGE_FEED_LANES,
)
new_inputs_sensor = new_inputs_lanes[0]

ready_tasks_lanes = change_feed_sensors(
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
    lanes=CHANGE_FEED_LANES,
)
ready_tasks_sensor = ready_tasks_lanes[0]

new_products_lanes = change_feed_sensors(
    NEW_PRODUCTS_SENSOR,
    tables=["processing.product"],
    operations=["INSERT"],
    job=processing_harvest_job,
    run_config={"ops": {"processing__input": {"config": {"sources": ["product"]}}}},
    description="Harvests new products as inputs of the next routine.",
    lanes=CHANGE_FEED_LANES,
)
new_products_sensor = new_products_lanes[0]

job_status_sensor = build_job_status_sensor(processing_launcher_job)

PROCESSING_JOBS: list[Any] = [
    processing_harvest_job,
    processing_orchestrator_job,
    processing_launcher_job,
    processing_status_job,
    processing_change_feed_prune_job,
]
PROCESSING_SCHEDULES = [harvest_schedule, prune_schedule]
PROCESSING_SENSORS = [
    *new_inputs_lanes,
    *ready_tasks_lanes,
    *new_products_lanes,
    job_status_sensor,
]
