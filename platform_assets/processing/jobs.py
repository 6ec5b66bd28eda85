"""Jobs and schedules of the processing chain, and the ops of the orchestrator, launcher and
status tracker.

    harvest -> processing.input --(new inputs sensor)--> orchestrator -> processing_task
    processing_task / 'processed' status --(ready tasks sensor)--> launcher -> Nomad
    processing.product --(new products sensor)--> harvest (products become inputs)
    job status sensor, every 30 s -> status job: job states -> processing_status and products

The ops call orchestrate.py and launch.py; the sensors that start these jobs are in
sensors/processing.py. Every job is state-based: it acts on all rows that need it, the change batch
that started it is only a tag (`fishnet/change_batch`).
"""

# No `from __future__ import annotations` here: Dagster reads these annotations (config and
# resource parameters) when the definitions are built.
# The planner (ortools, numpy), the launcher's clients and the SQL modules are imported by the op
# bodies, not by the definitions.
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetKey,
    AssetMaterialization,
    Config,
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    ScheduleDefinition,
    define_asset_job,
    job,
    op,
)
from pydantic import Field

from platform_assets.change_feed.tags import BATCH_TAG
from platform_assets.ops.dry_run import DryRun
from platform_assets.processing.assets import (
    DISPATCH_KEY,
    INPUT_ASSET_KEY,
    PRODUCT_KEY,
    STATUS_KEY,
    TASK_KEY,
    VM_KEY,
)
from platform_assets.table_metadata import row_count
from resources.launcher import LauncherResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    from platform_assets.processing.launch import DispatchReport
    from platform_assets.processing.orchestrate import PlanningReport, UnplacedTask

JOB_STATUS_SENSOR = "processing_job_status_sensor"
STATUS_JOB = "processing_status_job"
STATUS_POLL_SECONDS = 30
LOGGED_UNPLACED = 20
# What the op jobs would act on, counted under dry run (they then act on nothing: their SQL
# modules commit as they go, and the launcher talks to Nomad).
PENDING_PAIRS_SQL = (
    "SELECT count(*) FROM processing.input i "
    "JOIN processing.processing_routine r ON r.input_product_type = i.product_type "
    "WHERE NOT EXISTS (SELECT 1 FROM processing.processing_task t "
    "WHERE t.input_id = i.id AND t.routine = r.name)"
)
READY_TASKS_SQL = "SELECT count(*) FROM processing.ready_task"


def _dry_run_output(
    context: OpExecutionContext,
    warehouse: WarehouseResource,
    dry_run: DryRunResource,
    what: str,
    sql: str | None,
) -> Output | None:
    """Under dry run (tag, `dry_run` resource or FISHNET_DRY_RUN), the op's output: what it would
    act on; else None."""
    dry = DryRun.from_context(context, dry_run)
    if not dry:
        return None
    count = None
    if sql is not None:
        with warehouse.engine.connect() as conn:
            count = conn.exec_driver_sql(sql).scalar_one()
    context.log.info(
        f"dry run ({dry.origin}): nothing done"
        + (f"; {count} {what.replace('_', ' ')}" if count is not None else "")
    )
    return Output(None, metadata=dry.metadata() | ({what: count} if count is not None else {}))


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


def _unplaced_json(items: "list[UnplacedTask]") -> list[dict[str, Any]]:
    return [
        {"task_id": u.task_id, "input_id": u.input_id, "routine": u.routine, "reason": u.reason}
        for u in items[:100]
    ]


def planning_metadata(report: "PlanningReport") -> dict[str, Any]:
    """Run metadata of an orchestrator run."""
    from platform_assets.processing.orchestrate import summarize_unplaced

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


def _report_tables(
    context: OpExecutionContext, warehouse: WarehouseResource, keys: list[AssetKey]
) -> None:
    """Record a materialisation (with its row count) of each chain table this op changed."""
    with warehouse.engine.connect() as conn:
        for key in keys:
            count = conn.exec_driver_sql(f"SELECT count(*) FROM {'.'.join(key.path)}").scalar_one()
            context.log_event(AssetMaterialization(asset_key=key, metadata=row_count(count)))


def plan_tasks(
    context: OpExecutionContext,
    config: OrchestratorConfig,
    warehouse: WarehouseResource,
    dry_run: DryRunResource,
) -> Iterator[Output]:
    """Body of the orchestrator op: plan, log what could not be placed and why, report."""
    from platform_assets.processing.orchestrate import orchestrate, settings_from_env

    dry = _dry_run_output(
        context, warehouse, dry_run, "would_plan_input_routine_pairs", PENDING_PAIRS_SQL
    )
    if dry is not None:
        yield dry
        return
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
    _report_tables(context, warehouse, [TASK_KEY, VM_KEY])
    yield Output(None, metadata=planning_metadata(report))


def _dispatch_metadata(report: "DispatchReport") -> dict[str, Any]:
    return {
        "dispatched": len(report.dispatched),
        "retries": sum(1 for d in report.dispatched if d.attempt > 1),
        "still_locked": len(report.still_locked),
        "jobs": MetadataValue.json([d.job_id for d in report.dispatched[:200]]),
    }


def _launch(
    warehouse: WarehouseResource, launcher: LauncherResource, only: list[int] | None = None
) -> "DispatchReport":
    from platform_assets.processing.launch import DispatchReport, dispatch_ready
    from resources.nomad import LauncherError

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
    context: OpExecutionContext,
    warehouse: WarehouseResource,
    launcher: LauncherResource,
    dry_run: DryRunResource,
) -> Iterator[Output]:
    """Body of the launcher op: dispatch every ready task once, report."""
    dry = _dry_run_output(context, warehouse, dry_run, "would_dispatch_tasks", READY_TASKS_SQL)
    if dry is not None:
        yield dry
        return
    report = _launch(warehouse, launcher)
    context.log.info(
        f"dispatched {len(report.dispatched)} task(s) to the {launcher.kind} launcher "
        f"(change batch {context.run.tags.get(BATCH_TAG, 'none')})"
    )
    _report_tables(context, warehouse, [DISPATCH_KEY])
    yield Output(None, metadata={"launcher": launcher.kind, **_dispatch_metadata(report)})


@op(
    out=Out(Nothing),
    description="Polls unfinished jobs into processing_status (and products), then dispatches "
    "the next attempt of the failed ones with attempts left.",
)
def track_processing_jobs(
    context: OpExecutionContext,
    warehouse: WarehouseResource,
    launcher: LauncherResource,
    dry_run: DryRunResource,
):
    """Record job state changes, then retry failed attempts."""
    from platform_assets.processing.launch import DispatchReport, PollReport, poll_statuses
    from resources.nomad import LauncherError

    dry = _dry_run_output(context, warehouse, dry_run, "would_poll", None)
    if dry is not None:
        yield dry
        return
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
    _report_tables(context, warehouse, [STATUS_KEY, PRODUCT_KEY, DISPATCH_KEY])
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
    context: OpExecutionContext,
    config: OrchestratorConfig,
    warehouse: WarehouseResource,
    dry_run: DryRunResource,
):
    """Plan pending inputs onto the fewest VMs (orchestrate.py + planner.py)."""
    yield from plan_tasks(context, config, warehouse, dry_run)


@op(out=Out(Nothing), description="Starts a Nomad job (or a local process) for every ready task.")
def launch_ready_tasks(
    context: OpExecutionContext,
    warehouse: WarehouseResource,
    launcher: LauncherResource,
    dry_run: DryRunResource,
):
    """Dispatch every ready task exactly once (launch.py)."""
    yield from launch_tasks(context, warehouse, launcher, dry_run)


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
    context: OpExecutionContext,
    config: PruneConfig,
    warehouse: WarehouseResource,
    dry_run: DryRunResource,
):
    """Prune `ops.change_event` below the slowest consumer and old `ops.change_feed_batch` rows."""
    from platform_assets.change_feed.maintenance import prune

    dry = _dry_run_output(context, warehouse, dry_run, "would_prune", None)
    if dry is not None:
        yield dry
        return
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

PROCESSING_JOBS: list[Any] = [
    processing_harvest_job,
    processing_orchestrator_job,
    processing_launcher_job,
    processing_status_job,
    processing_change_feed_prune_job,
]
PROCESSING_SCHEDULES = [harvest_schedule, prune_schedule]
