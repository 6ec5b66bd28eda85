"""Dagster layer of the orchestrator, the launcher and the status tracker.

The op bodies of `processing_orchestrator_job` and `processing_launcher_job` (jobs.py) call
`plan_tasks` and `launch_tasks`; this module also defines the status tracking job and the sensor
factory jobs.py builds the status sensor with:

    processing_job_status_sensor, every 30 s:
        a job not known to have ended -> processing_status_job: job states -> processing_status
                                         and products; failed attempts with attempts left are
                                         dispatched again at once
        a task ready on two ticks in a row (a launcher run failed, Nomad was down...)
                                      -> processing_launcher_job

The work itself is in orchestrate.py and launch.py.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations (config and
# resource parameters) when the definitions are built.
import json
from collections.abc import Iterator
from typing import Any

from dagster import (
    Config,
    DagsterRunStatus,
    DefaultSensorStatus,
    Failure,
    JobDefinition,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    job,
    op,
    sensor,
)
from pydantic import Field

from platform_assets.processing.launch import (
    DispatchReport,
    PollReport,
    dispatch_ready,
    poll_statuses,
    ready_task_ids,
    work_counts,
)
from platform_assets.processing.launcher_resource import LauncherResource
from platform_assets.processing.nomad_client import LauncherError
from platform_assets.processing.orchestrate import (
    PlanningReport,
    UnplacedTask,
    orchestrate,
    settings_from_env,
    summarize_unplaced,
)
from resources.warehouse import WarehouseResource
from sensors.change_feed import BATCH_TAG

JOB_STATUS_SENSOR = "processing_job_status_sensor"
STATUS_JOB = "processing_status_job"
STATUS_POLL_SECONDS = 30
LOGGED_UNPLACED = 20


class OrchestratorConfig(Config):
    """Planning limits; empty values come from the environment, then the defaults."""

    max_vms: int | None = Field(
        default=None, description="VMs allowed in total; empty: FISHNET_MAX_VMS, else 20."
    )
    horizon_hours: float | None = Field(
        default=None,
        description="Every task must end within this many hours from now; empty: "
        "FISHNET_PLANNING_HORIZON_HOURS, else 24.",
    )
    successors_on_same_vm: bool = Field(
        default=True,
        description="Run a chain's successor on its predecessor's VM (it reads its product).",
    )


def _unplaced_json(items: list[UnplacedTask]) -> list[dict[str, Any]]:
    return [
        {"task_id": u.task_id, "input_id": u.input_id, "routine": u.routine, "reason": u.reason}
        for u in items[:100]
    ]


def planning_metadata(report: PlanningReport) -> dict[str, Any]:
    """Run metadata of an orchestrator run."""
    return {
        "tasks_planned": report.planned_tasks,
        "new_tasks": report.new_tasks,
        "replanned_tasks": report.replanned_tasks,
        "pending_pairs": report.pending_pairs,
        "adopted_inputs": report.adopted_inputs,
        "fixed_tasks": report.fixed_tasks,
        "vms_used": report.vms_used,
        "vms_lower_bound": report.lower_bound if report.lower_bound is not None else "n/a",
        "new_vms": ", ".join(report.new_vms) or "none",
        "vms_released": report.vms_released,
        "unplaced": len(report.unplaced),
        "unplaced_reasons": MetadataValue.json(summarize_unplaced(report.unplaced)),
        "unplaced_tasks": MetadataValue.json(_unplaced_json(report.unplaced)),
        "blocked": len(report.blocked),
        "blocked_tasks": MetadataValue.json(_unplaced_json(report.blocked)),
    }


def plan_tasks(
    context: OpExecutionContext, config: OrchestratorConfig, warehouse: WarehouseResource
) -> Iterator[Output]:
    """Body of the orchestrator op: plan, log what could not be placed and why, report."""
    settings = settings_from_env(config.max_vms, config.horizon_hours, config.successors_on_same_vm)
    report = orchestrate(warehouse.engine, settings)
    for item in report.unplaced[:LOGGED_UNPLACED]:
        context.log.warning(
            f"unplaced task {item.task_id} ({item.routine}, input {item.input_id}): "
            f"{item.reason}; it stays pending without a VM"
        )
    if len(report.unplaced) > LOGGED_UNPLACED:
        context.log.warning(f"... and {len(report.unplaced) - LOGGED_UNPLACED} more unplaced")
    for item in report.blocked[:LOGGED_UNPLACED]:
        context.log.warning(f"blocked task {item.task_id} ({item.routine}): {item.reason}")
    context.log.info(
        f"planned {report.planned_tasks} task(s) ({report.new_tasks} new, "
        f"{report.replanned_tasks} replanned) on {report.vms_used} VM(s) "
        f"(lower bound {report.lower_bound}, new: {', '.join(report.new_vms) or 'none'}); "
        f"{len(report.unplaced)} unplaced, {len(report.blocked)} blocked; max_vms "
        f"{settings.max_vms}, horizon {settings.horizon_s} s "
        f"(change batch {context.run.tags.get(BATCH_TAG, 'none')})"
    )
    yield Output(None, metadata=planning_metadata(report))


def _dispatch_metadata(report: DispatchReport) -> dict[str, Any]:
    return {
        "dispatched": len(report.dispatched),
        "retries": sum(1 for d in report.dispatched if d.attempt > 1),
        "still_locked": len(report.still_locked),
        "jobs": MetadataValue.json([d.job_id for d in report.dispatched[:200]]),
    }


def _launch(
    warehouse: WarehouseResource, launcher: LauncherResource, only: list[int] | None = None
) -> DispatchReport:
    report = DispatchReport()
    try:
        dispatch_ready(
            warehouse.engine, launcher.launcher(), launcher.settings(), only=only, report=report
        )
    except LauncherError as exc:
        raise Failure(
            description=f"{launcher.kind} launcher failed after {len(report.dispatched)} "
            f"dispatch(es): {exc}. The task it was dispatching is not marked dispatched and "
            "stays ready.",
            metadata=_dispatch_metadata(report),
        ) from exc
    return report


def launch_tasks(
    context: OpExecutionContext, warehouse: WarehouseResource, launcher: LauncherResource
) -> Iterator[Output]:
    """Body of the launcher op: dispatch every ready task once, report."""
    report = _launch(warehouse, launcher)
    context.log.info(
        f"dispatched {len(report.dispatched)} task(s) to the {launcher.kind} launcher "
        f"(change batch {context.run.tags.get(BATCH_TAG, 'none')})"
    )
    yield Output(None, metadata={"launcher": launcher.kind, **_dispatch_metadata(report)})


@op(
    out=Out(Nothing),
    description="Polls unfinished jobs into processing_status (and products), then dispatches "
    "the next attempt of the failed ones with attempts left.",
)
def track_processing_jobs(
    context: OpExecutionContext, warehouse: WarehouseResource, launcher: LauncherResource
):
    """Record job state changes, then retry failed attempts."""
    polled = PollReport()
    try:
        poll_statuses(
            warehouse.engine, launcher.launcher(), launcher.settings().products_dir, polled
        )
    except LauncherError as exc:
        raise Failure(
            description=f"{launcher.kind} launcher failed while polling: {exc}. "
            f"{len(polled.changes)} status change(s) were recorded before.",
        ) from exc
    for change in polled.changes:
        if change.status in ("internal_error", "external_error"):
            context.log.warning(
                f"task {change.task_id} attempt {change.attempt} ({change.job_id}): "
                f"{change.status}, exit code {change.exit_code}: {change.message}"
                + ("; will retry" if change.retry else "; no attempt left")
            )
    retries = sorted({c.task_id for c in polled.changes if c.retry})
    dispatched = _launch(warehouse, launcher, only=retries) if retries else DispatchReport()
    counts = {
        status: polled.count(status)
        for status in ("pending", "started", "processed", "internal_error", "external_error")
    }
    context.log.info(
        f"polled {polled.polled} job(s): "
        + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        + f"; dispatched {len(dispatched.dispatched)}"
    )
    yield Output(
        None,
        metadata={
            "launcher": launcher.kind,
            "polled": polled.polled,
            **{f"now_{k}": v for k, v in counts.items()},
            "products": sum(1 for c in polled.changes if c.product_id is not None),
            "failed_for_good": sum(
                1
                for c in polled.changes
                if c.status in ("internal_error", "external_error") and not c.retry
            ),
            **_dispatch_metadata(dispatched),
        },
    )


@job(
    name=STATUS_JOB,
    description="Polls processing jobs into processing_status and products; dispatches retries.",
)
def processing_status_job() -> None:
    track_processing_jobs()


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


def build_job_status_sensor(launcher_job: JobDefinition) -> SensorDefinition:
    """The status sensor; it also restarts `launcher_job` for tasks left ready (see module doc)."""

    @sensor(
        name=JOB_STATUS_SENSOR,
        jobs=[processing_status_job, launcher_job],
        minimum_interval_seconds=STATUS_POLL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Every 30 s: starts the status job while processing jobs run, and the "
        "launcher for tasks that stayed ready since the last tick.",
    )
    def job_status_sensor(
        context: SensorEvaluationContext, warehouse: WarehouseResource
    ) -> SensorResult:
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
            running = _in_flight(context, launcher_job.name)
            if running:
                skipped.append(f"launcher run {running} in flight")
            else:
                context.log.warning(
                    f"{len(stale)} task(s) ready since the last tick were not dispatched "
                    f"(e.g. task {min(stale)}): starting the launcher"
                )
                requests.append(
                    RunRequest(
                        job_name=launcher_job.name, tags={"fishnet/stale_ready": str(len(stale))}
                    )
                )
        if requests:
            return SensorResult(run_requests=requests, cursor=cursor)
        reason = "; ".join(skipped) or "no processing job running and no task left ready"
        return SensorResult(skip_reason=reason, cursor=cursor)

    return job_status_sensor
