"""The launcher and the status tracker: ready tasks become jobs, job states become statuses.

No Dagster here (chain_ops.py is the Dagster layer); a `TaskLauncher` (nomad_client.py) runs the
jobs, Nomad or local subprocesses alike.

**Dispatch** (`dispatch_ready`). The database decides readiness: the view
`processing.ready_task` (migration 0007) lists the tasks placed on a VM whose preceding task (if
any) is processed and which were never dispatched, or whose latest attempt failed with attempts
left, with the attempt number to use. Each task is dispatched in its own transaction:

1. claim the task row (`FOR UPDATE SKIP LOCKED`): another launcher, or an orchestrator replanning
   it, holds the ones it skips;
2. read it again from `ready_task` in a new statement (a fresh snapshot: a launcher that
   dispatched it just before we locked it has committed by now);
3. insert the `nomad_job_dispatch` row (`UNIQUE (task_id, attempt)`, `ON CONFLICT DO NOTHING` as
   a backstop) and a `pending` status;
4. register the job (`task-<id>-a<attempt>`), then commit.

If the launcher raises (Nomad unreachable, job refused) the transaction rolls back: nothing says
the task was dispatched, and the error goes up with the task's identity. If the commit itself
failed after a successful registration, the next dispatch registers the same job id again, which
neither Nomad nor the local launcher runs twice. Tasks held by someone else are waited for (up to
`lock_wait_s`) once the free ones are done, so a task an orchestrator was replanning is not
stranded until the next change.

**Status tracking** (`poll_statuses`). Every task whose latest attempt is not terminal is asked
for its job state; a change is recorded (`processing_status`, with exit code and message), under
a lock on the dispatch row so two trackers record it once. Nomad `pending` -> `pending`,
`running` -> `started`, `complete` -> `processed` (and a `product` row at the path the job was
given), `failed` -> `internal_error` (exit code), a job Nomad no longer knows (`lost`) ->
`external_error` with message `lost`. A failed attempt with attempts left is dispatched again by
the next `dispatch_ready` (the view lists it with attempt + 1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from resources.nomad import JobState, LaunchSettings, TaskJobSpec, TaskLauncher

log = logging.getLogger(__name__)

ENV_TASK_ID = "FISHNET_TASK_ID"
ENV_ATTEMPT = "FISHNET_ATTEMPT"
ENV_ROUTINE = "FISHNET_ROUTINE"
ENV_INPUT_ID = "FISHNET_INPUT_ID"
ENV_INPUT_PATH = "FISHNET_INPUT_PATH"
ENV_OUTPUT_PATH = "FISHNET_OUTPUT_PATH"

TERMINAL_TASK_STATUSES = frozenset({"processed", "internal_error", "external_error", "terminated"})
LOST_MESSAGE = "lost"


@dataclass(frozen=True)
class ReadyTask:
    """A task to dispatch now, with what its job needs."""

    task_id: int
    attempt: int
    routine: str
    vm_name: str
    image: str
    command: tuple[str, ...]
    cpu: float
    ram_mb: int
    output_product_type: str
    input_id: int | None
    input_path: str | None


@dataclass(frozen=True)
class Dispatched:
    """One job registered and recorded."""

    task_id: int
    attempt: int
    job_id: str
    vm_name: str
    dispatch_id: int


@dataclass
class DispatchReport:
    """What one launcher pass did."""

    dispatched: list[Dispatched] = field(default_factory=list)
    still_locked: list[int] = field(default_factory=list)
    """Ready tasks someone else still held when `lock_wait_s` ran out."""


@dataclass(frozen=True)
class StatusChange:
    """A status recorded for a task's attempt (and its product when processed)."""

    task_id: int
    attempt: int
    job_id: str
    status: str
    exit_code: int | None
    message: str
    product_id: int | None = None
    retry: bool = False
    """An error with attempts left: the next dispatch runs attempt + 1."""


@dataclass
class PollReport:
    """What one status pass saw and recorded."""

    polled: int = 0
    changes: list[StatusChange] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many changes to `status` were recorded."""
        return sum(1 for c in self.changes if c.status == status)


def job_id_for(task_id: int, attempt: int) -> str:
    """The job id of a task's attempt: one job per attempt, never reused."""
    return f"task-{task_id}-a{attempt}"


def output_path_for(products_dir: str, output_product_type: str, task_id: int) -> str:
    """Where a task writes its product (the same for every attempt)."""
    return str(PurePosixPath(products_dir) / output_product_type / f"task-{task_id}")


def job_spec(task: ReadyTask, settings: LaunchSettings, output_path: str) -> TaskJobSpec:
    """The batch job of a task's attempt: the routine's image and argv, resources, pinned VM."""
    env = {
        ENV_TASK_ID: str(task.task_id),
        ENV_ATTEMPT: str(task.attempt),
        ENV_ROUTINE: task.routine,
        ENV_INPUT_PATH: task.input_path or "",
        ENV_OUTPUT_PATH: output_path,
    }
    if task.input_id is not None:
        env[ENV_INPUT_ID] = str(task.input_id)
    return TaskJobSpec(
        task_id=task.task_id,
        job_id=job_id_for(task.task_id, task.attempt),
        image=task.image,
        cpu_mhz=max(1, round(task.cpu * settings.mhz_per_core)),
        memory_mb=task.ram_mb,
        vm_name=task.vm_name,
        env=env,
        command=task.command[0] if task.command else None,
        args=list(task.command[1:]),
    )


# ---------------------------------------------------------------------------------------------
# Dispatch

_READY_IDS = sa.text(
    """
    SELECT task_id FROM processing.ready_task
    WHERE CAST(:only AS bigint[]) IS NULL OR task_id = ANY(CAST(:only AS bigint[]))
    ORDER BY task_id
    """
)

_READY_DETAIL = sa.text(
    """
    SELECT rt.task_id, rt.attempt, t.routine, vm.name AS vm_name, r.docker_image, r.command,
           r.cpu, r.ram_mb, r.output_product_type, t.input_id,
           COALESCE(i.path, up.path, pp.path) AS input_path
    FROM processing.ready_task rt
    JOIN processing.processing_task t ON t.id = rt.task_id
    JOIN processing.processing_routine r ON r.name = t.routine
    JOIN processing.virtual_machine vm ON vm.id = t.virtual_machine_id
    LEFT JOIN processing.input i ON i.id = t.input_id
    LEFT JOIN processing.product up ON up.id = t.upstream_product_id
    LEFT JOIN processing.product pp ON pp.task_id = t.preceding_task_id
    WHERE rt.task_id = :id
    """
)

_INSERT_DISPATCH = sa.text(
    """
    INSERT INTO processing.nomad_job_dispatch (task_id, attempt, nomad_job_id, output_path)
    VALUES (:task_id, :attempt, :job_id, :output_path)
    ON CONFLICT DO NOTHING
    RETURNING id
    """
)

# clock_timestamp(), not now(): a status must sort after the ones committed before it, whatever
# time its transaction started.
_INSERT_STATUS = sa.text(
    """
    INSERT INTO processing.processing_status (task_id, dispatch_id, status, exit_code, message, at)
    VALUES (:task_id, :dispatch_id, :status, :exit_code, :message, clock_timestamp())
    """
)

_LOCKED = object()


def ready_task_ids(engine: sa.Engine, only: Sequence[int] | None = None) -> list[int]:
    """Ids of the tasks `processing.ready_task` lists now (optionally among `only`)."""
    with engine.connect() as conn:
        return list(
            conn.execute(_READY_IDS, {"only": list(only) if only is not None else None}).scalars()
        )


def _ready_task(row: sa.Row) -> ReadyTask:
    return ReadyTask(
        task_id=row.task_id,
        attempt=row.attempt,
        routine=row.routine,
        vm_name=row.vm_name,
        image=row.docker_image,
        command=tuple(row.command or ()),
        cpu=row.cpu,
        ram_mb=row.ram_mb,
        output_product_type=row.output_product_type,
        input_id=row.input_id,
        input_path=row.input_path,
    )


def _dispatch_one(
    engine: sa.Engine,
    launcher: TaskLauncher,
    settings: LaunchSettings,
    task_id: int,
    wait_s: float | None = None,
) -> Dispatched | object | None:
    """Dispatch one task in one transaction; `_LOCKED` if someone holds it, None if not ready.

    With `wait_s`, wait that long for the lock instead of skipping the task.
    """
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            outcome = _claim_and_dispatch(conn, launcher, settings, task_id, wait_s)
        except OperationalError as exc:
            transaction.rollback()
            if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_timeout: still held
                return _LOCKED
            raise
        except BaseException:
            transaction.rollback()
            raise
        if isinstance(outcome, Dispatched):
            transaction.commit()
            log.info(
                "dispatched task %d attempt %d as %s on %s",
                task_id,
                outcome.attempt,
                outcome.job_id,
                outcome.vm_name,
            )
        else:
            transaction.rollback()
        return outcome


def _claim_and_dispatch(
    conn: sa.Connection,
    launcher: TaskLauncher,
    settings: LaunchSettings,
    task_id: int,
    wait_s: float | None,
) -> Dispatched | object | None:
    if wait_s is None:
        claim = "FOR UPDATE SKIP LOCKED"
    else:
        claim = "FOR UPDATE"
        conn.execute(
            sa.text("SELECT set_config('lock_timeout', :timeout, true)"),
            {"timeout": f"{max(1, int(wait_s * 1000))}ms"},
        )
    claimed = conn.execute(
        sa.text(f"SELECT id FROM processing.processing_task WHERE id = :id {claim}"),
        {"id": task_id},
    ).first()
    if claimed is None:
        return _LOCKED
    row = conn.execute(_READY_DETAIL, {"id": task_id}).first()
    if row is None:  # dispatched (or replanned away) by whoever held it before us
        return None
    task = _ready_task(row)
    output_path = output_path_for(settings.products_dir, task.output_product_type, task_id)
    spec = job_spec(task, settings, output_path)
    dispatch_id = conn.execute(
        _INSERT_DISPATCH,
        {
            "task_id": task_id,
            "attempt": task.attempt,
            "job_id": spec.job_id,
            "output_path": output_path,
        },
    ).scalar()
    if dispatch_id is None:
        return None
    conn.execute(
        _INSERT_STATUS,
        {
            "task_id": task_id,
            "dispatch_id": dispatch_id,
            "status": "pending",
            "exit_code": None,
            "message": f"registered {spec.job_id} on {task.vm_name}",
        },
    )
    # Last, inside the transaction: if it raises, the rollback leaves no dispatch behind.
    launcher.register_batch_job(spec)
    return Dispatched(task_id, task.attempt, spec.job_id, task.vm_name, dispatch_id)


def dispatch_ready(
    engine: sa.Engine,
    launcher: TaskLauncher,
    settings: LaunchSettings,
    only: Sequence[int] | None = None,
    report: DispatchReport | None = None,
) -> DispatchReport:
    """Dispatch every ready task (optionally among `only`) exactly once; see the module doc.

    Raises what the launcher raises (LauncherError) after rolling back that task's claim; the
    tasks dispatched before it stay dispatched (and are in `report` when the caller passed one).
    """
    report = report if report is not None else DispatchReport()
    done: set[int] = set()
    deadline = time.monotonic() + settings.lock_wait_s
    while True:
        candidates = [i for i in ready_task_ids(engine, only) if i not in done]
        if not candidates:
            return report
        locked: list[int] = []
        for task_id in candidates:
            outcome = _dispatch_one(engine, launcher, settings, task_id)
            if outcome is _LOCKED:
                locked.append(task_id)
                continue
            done.add(task_id)
            if isinstance(outcome, Dispatched):
                report.dispatched.append(outcome)
        if not locked:
            continue  # tasks may have become ready meanwhile: look again
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            report.still_locked = locked
            log.warning(
                "%d ready task(s) still held by another transaction: %s", len(locked), locked
            )
            return report
        # Held by a launcher dispatching it or an orchestrator replanning it: wait for it.
        outcome = _dispatch_one(engine, launcher, settings, locked[0], wait_s=remaining)
        if outcome is not _LOCKED:
            done.add(locked[0])
            if isinstance(outcome, Dispatched):
                report.dispatched.append(outcome)


# ---------------------------------------------------------------------------------------------
# Status tracking

_ACTIVE_ATTEMPTS = sa.text(
    """
    SELECT a.task_id, a.dispatch_id, a.attempt, a.nomad_job_id, a.output_path, a.status,
           r.max_attempts, r.output_product_type
    FROM processing.task_attempt a
    JOIN processing.processing_task t ON t.id = a.task_id
    JOIN processing.processing_routine r ON r.name = t.routine
    WHERE a.status IS NULL OR a.status IN ('pending', 'started')
    ORDER BY a.task_id
    """
)

_LATEST_STATUS_OF_DISPATCH = sa.text(
    """
    SELECT status FROM processing.processing_status WHERE dispatch_id = :dispatch_id
    ORDER BY at DESC, id DESC LIMIT 1
    """
)

_INSERT_PRODUCT = sa.text(
    """
    INSERT INTO processing.product (task_id, path, product_type)
    VALUES (:task_id, :path, :product_type)
    ON CONFLICT (task_id) DO NOTHING
    RETURNING id
    """
)


def status_for(state: JobState) -> tuple[str, int | None, str]:
    """A job state as (processing status, exit code, message)."""
    if state.status == "pending":
        return "pending", None, state.message
    if state.status == "running":
        return "started", None, state.message
    if state.status == "complete":
        return "processed", 0 if state.exit_code is None else state.exit_code, state.message
    if state.status == "failed":
        return "internal_error", state.exit_code, state.message
    return "external_error", state.exit_code, LOST_MESSAGE


_WORK_COUNTS = sa.text(
    """
    SELECT
        (SELECT count(*) FROM processing.task_attempt
         WHERE status IS NULL OR status IN ('pending', 'started')) AS active,
        (SELECT count(*) FROM processing.ready_task) AS ready
    """
)


def work_counts(engine: sa.Engine) -> tuple[int, int]:
    """(attempts whose job is not known to have ended, tasks ready to dispatch)."""
    with engine.connect() as conn:
        row = conn.execute(_WORK_COUNTS).one()
    return row.active, row.ready


def poll_statuses(
    engine: sa.Engine,
    launcher: TaskLauncher,
    products_dir: str,
    report: PollReport | None = None,
) -> PollReport:
    """Ask the launcher about every unfinished attempt and record what changed.

    Raises what the launcher raises (NomadUnavailableError): statuses recorded before stay.
    """
    report = report if report is not None else PollReport()
    with engine.connect() as conn:
        active = conn.execute(_ACTIVE_ATTEMPTS).all()
    for attempt in active:
        state = launcher.job_state(attempt.nomad_job_id)
        report.polled += 1
        status, exit_code, message = status_for(state)
        if status == attempt.status:
            continue
        if state.status == "lost":
            log.warning(
                "job %s of task %d is lost: %s",
                attempt.nomad_job_id,
                attempt.task_id,
                state.message,
            )
        with engine.begin() as conn:
            locked = conn.execute(
                sa.text(
                    "SELECT id FROM processing.nomad_job_dispatch WHERE id = :id "
                    "FOR UPDATE SKIP LOCKED"
                ),
                {"id": attempt.dispatch_id},
            ).first()
            if locked is None:
                continue  # another tracker is recording this attempt
            current = conn.execute(
                _LATEST_STATUS_OF_DISPATCH, {"dispatch_id": attempt.dispatch_id}
            ).scalar()
            if current != attempt.status:
                continue  # recorded meanwhile: the next pass starts from there
            conn.execute(
                _INSERT_STATUS,
                {
                    "task_id": attempt.task_id,
                    "dispatch_id": attempt.dispatch_id,
                    "status": status,
                    "exit_code": exit_code,
                    "message": message,
                },
            )
            product_id = None
            if status == "processed":
                path = attempt.output_path or output_path_for(
                    products_dir, attempt.output_product_type, attempt.task_id
                )
                product_id = conn.execute(
                    _INSERT_PRODUCT,
                    {
                        "task_id": attempt.task_id,
                        "path": path,
                        "product_type": attempt.output_product_type,
                    },
                ).scalar()
        retry = status in ("internal_error", "external_error") and (
            attempt.attempt < attempt.max_attempts
        )
        report.changes.append(
            StatusChange(
                attempt.task_id,
                attempt.attempt,
                attempt.nomad_job_id,
                status,
                exit_code,
                message,
                product_id,
                retry,
            )
        )
    return report
