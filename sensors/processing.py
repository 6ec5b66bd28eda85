"""Sensors of the processing chain: three change-feed consumers and the job status poller.

Each change-feed consumer is declared as `CHANGE_FEED_LANES` sensors sharing one position in the
database (sensors/change_feed.py explains why): the automation page shows them as
`<consumer>`, `<consumer>_lane_2`, ... with the same description and "lane k of n".
"""

# No `from __future__ import annotations` here: Dagster reads these annotations.
import json

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from platform_assets.processing.jobs import (
    CHANGE_FEED_LANES,
    JOB_STATUS_SENSOR,
    NEW_INPUTS_SENSOR,
    NEW_PRODUCTS_SENSOR,
    READY_TASKS_SENSOR,
    STATUS_JOB,
    STATUS_POLL_SECONDS,
    processing_harvest_job,
    processing_launcher_job,
    processing_orchestrator_job,
    processing_status_job,
)
from resources.warehouse import WarehouseResource
from sensors.change_feed import change_feed_sensors

IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
MAX_REMEMBERED_READY = 1000


def _in_flight(context: SensorEvaluationContext, job_name: str) -> str | None:
    runs = context.instance.get_runs(RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=1)
    return runs[0].run_id if runs else None


@sensor(
    name=JOB_STATUS_SENSOR,
    jobs=[processing_status_job, processing_launcher_job],
    minimum_interval_seconds=STATUS_POLL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Every 30 s: starts the status job while processing jobs run, and the "
    "launcher for tasks that stayed ready since the last tick.",
)
def job_status_sensor(
    context: SensorEvaluationContext, warehouse: WarehouseResource
) -> SensorResult:
    # the launch queries (SQLAlchemy) are loaded by a tick, not by the definitions
    from platform_assets.processing.launch import ready_task_ids, work_counts

    active, ready = work_counts(warehouse.engine)
    previous = set(json.loads(context.cursor)["ready"]) if context.cursor else set()
    ready_now = ready_task_ids(warehouse.engine)[:MAX_REMEMBERED_READY] if ready else []
    cursor = json.dumps({"ready": ready_now})
    requests: list[RunRequest] = []
    skipped: list[str] = []
    if active:
        running = _in_flight(context, STATUS_JOB)
        if running:
            skipped.append(f"status run {running} in flight")
        else:
            requests.append(
                RunRequest(job_name=STATUS_JOB, tags={"fishnet/active_jobs": str(active)})
            )
    stale = previous.intersection(ready_now)
    if stale:
        running = _in_flight(context, processing_launcher_job.name)
        if running:
            skipped.append(f"launcher run {running} in flight")
        else:
            context.log.warning(
                f"{len(stale)} task(s) ready since the last tick were not dispatched "
                f"(e.g. task {min(stale)}): starting the launcher"
            )
            requests.append(
                RunRequest(
                    job_name=processing_launcher_job.name,
                    tags={"fishnet/stale_ready": str(len(stale))},
                )
            )
    if requests:
        return SensorResult(run_requests=requests, cursor=cursor)
    reason = "; ".join(skipped) or "no processing job running and no task left ready"
    return SensorResult(skip_reason=reason, cursor=cursor)


new_inputs_lanes = change_feed_sensors(
    NEW_INPUTS_SENSOR,
    tables=["processing.input"],
    operations=["INSERT"],
    job=processing_orchestrator_job,
    description="Starts the orchestrator when inputs are registered.",
    lanes=CHANGE_FEED_LANES,
)

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

new_products_lanes = change_feed_sensors(
    NEW_PRODUCTS_SENSOR,
    tables=["processing.product"],
    operations=["INSERT"],
    job=processing_harvest_job,
    run_config={"ops": {"processing__input": {"config": {"sources": ["product"]}}}},
    description="Harvests new products as inputs of the next routine.",
    lanes=CHANGE_FEED_LANES,
)

PROCESSING_SENSORS = [
    *new_inputs_lanes,
    *ready_tasks_lanes,
    *new_products_lanes,
    job_status_sensor,
]
