"""The orchestrator: plan pending inputs and not-started tasks onto VMs, in one transaction.

The Dagster layer (chain_ops.py) calls `orchestrate`; this module reads the database, builds the
pure planner's input (planner.py), and writes its answer back:

- **What is planned**: every (input, routine) pair without a task (the routine takes the input's
  product type), together with the routine's chain (`next_routine`, followed to its end: one
  successor task per link, `input_id` NULL, `preceding_task_id` the task before it), and every
  task not dispatched yet (no `nomad_job_dispatch` row): those are replanned from now on.
- **Fixed load**: dispatched tasks. Running ones (latest attempt pending or started, or failed
  with attempts left, since it will run again) keep their VM busy until their planned end
  (at least `overrun_s` from now); processed ones only anchor the successors chained on them.
  A task whose preceding task failed for good is blocked: it loses its VM and says why.
- **Chains**: a successor runs after its preceding task and, with `successors_on_same_vm` (the
  default: it reads the product its predecessor wrote), on the same VM.
- **Unplaced tasks keep their row**, without VM, with `unplaced_reason`; the next run plans them
  again (their inputs are never dropped), and the launcher never sees them (`ready_task` wants a
  VM).
- **Products coming back as inputs**: a product the harvester registered as an input is attached
  to the successor task already planned for it (`input_id`, `upstream_product_id`) instead of
  getting a second task.

Concurrency: the whole run holds a transaction-level advisory lock, so two orchestrators plan one
after the other, the second on the first's committed rows; `UNIQUE (input_id, routine)` and the
one-successor index back this up (`ON CONFLICT DO NOTHING`). The not-started tasks are locked
(`FOR NO KEY UPDATE`, in id order) before anything is read: a launcher dispatching one of them
finishes first (and the task is then read as started), and launchers skip the locked ones until
the new plan commits.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from platform_assets.processing.planner import (
    BusySlot,
    ExistingVm,
    Flavour,
    Limits,
    Plan,
    Resources,
    TaskRequest,
    lower_bound,
    plan,
)
from resources.settings import setting_number

log = logging.getLogger(__name__)

MAX_VMS_ENV = "FISHNET_MAX_VMS"
HORIZON_ENV = "FISHNET_PLANNING_HORIZON_HOURS"
DEFAULT_MAX_VMS = 20
DEFAULT_HORIZON_HOURS = 24.0

PLANNING_LOCK_KEY = 7_243_100_000_001
"""`pg_advisory_xact_lock` key of the orchestrator (an arbitrary constant of this project)."""

ACTIVE_VM_STATES = ("planned", "starting", "running")
ERROR_STATUSES = ("internal_error", "external_error")


@dataclass(frozen=True)
class OrchestratorSettings:
    """Limits and options of one planning run."""

    max_vms: int = DEFAULT_MAX_VMS
    horizon_s: int = int(DEFAULT_HORIZON_HOURS * 3600)
    successors_on_same_vm: bool = True
    overrun_s: int = 60
    """A running task past its planned end is assumed to need this much longer."""


def settings_from_env(
    max_vms: int | None = None,
    horizon_hours: float | None = None,
    successors_on_same_vm: bool = True,
) -> OrchestratorSettings:
    """Explicit values win, else FISHNET_MAX_VMS / FISHNET_PLANNING_HORIZON_HOURS, else defaults.

    Read when a run plans, never at import.
    """
    if max_vms is None:
        max_vms = int(setting_number(MAX_VMS_ENV) or DEFAULT_MAX_VMS)
    if horizon_hours is None:
        horizon_hours = float(setting_number(HORIZON_ENV) or DEFAULT_HORIZON_HOURS)
    return OrchestratorSettings(
        max_vms=max_vms,
        horizon_s=max(1, int(horizon_hours * 3600)),
        successors_on_same_vm=successors_on_same_vm,
    )


@dataclass(frozen=True)
class UnplacedTask:
    """A task left without a VM this run, and why."""

    task_id: int | None
    input_id: int | None
    routine: str
    reason: str


@dataclass
class PlanningReport:
    """What one orchestrator run did."""

    planned_at: datetime
    pending_pairs: int = 0
    """(input, routine) pairs that had no task at the start of the run."""
    new_tasks: int = 0
    replanned_tasks: int = 0
    placed_tasks: int = 0
    adopted_inputs: int = 0
    fixed_tasks: int = 0
    vms_used: int = 0
    new_vms: list[str] = field(default_factory=list)
    vms_released: int = 0
    lower_bound: int | None = None
    unplaced: list[UnplacedTask] = field(default_factory=list)
    blocked: list[UnplacedTask] = field(default_factory=list)

    @property
    def planned_tasks(self) -> int:
        """Tasks this run gave a VM and a time slot (new and replanned)."""
        return self.placed_tasks


# ---------------------------------------------------------------------------------------------
# SQL


_LOCK_NOT_STARTED = sa.text(
    """
    SELECT t.id FROM processing.processing_task t
    WHERE NOT EXISTS (SELECT 1 FROM processing.nomad_job_dispatch d WHERE d.task_id = t.id)
    ORDER BY t.id
    FOR NO KEY UPDATE OF t
    """
)

_ADOPT_PRODUCT_INPUTS = sa.text(
    """
    UPDATE processing.processing_task s
    SET input_id = i.id, upstream_product_id = i.source_product_id
    FROM processing.input i
    JOIN processing.product p ON p.id = i.source_product_id
    JOIN processing.processing_routine r ON r.input_product_type = i.product_type
    WHERE s.preceding_task_id = p.task_id
      AND s.routine = r.name
      AND s.input_id IS NULL
      AND NOT EXISTS (
        SELECT 1 FROM processing.processing_task x WHERE x.input_id = i.id AND x.routine = r.name
      )
    """
)

_ROUTINES = sa.text(
    """
    SELECT name, cpu, ram_mb, storage_gb, expected_duration_s, next_routine, max_attempts
    FROM processing.processing_routine
    """
)

_FLAVOURS = sa.text("SELECT name, cpu, ram_mb, storage_gb FROM processing.vm_flavour ORDER BY name")

_VMS = sa.text(
    """
    SELECT id, name, flavour, cpu, ram_mb, storage_gb FROM processing.virtual_machine
    WHERE state = ANY(:states) ORDER BY id
    """
)

# Tasks that are planned again (never dispatched) or load a VM (latest attempt running, or
# failed with attempts left), with their latest attempt.
_TASKS = sa.text(
    """
    SELECT t.id, t.input_id, t.routine, t.virtual_machine_id, t.planned_end,
           t.preceding_task_id, a.attempt, a.status, a.task_id IS NOT NULL AS dispatched
    FROM processing.processing_task t
    JOIN processing.processing_routine r ON r.name = t.routine
    LEFT JOIN processing.task_attempt a ON a.task_id = t.id
    WHERE a.task_id IS NULL
       OR a.status IS NULL
       OR a.status IN ('pending', 'started')
       OR (a.status IN ('internal_error', 'external_error') AND a.attempt < r.max_attempts)
    ORDER BY t.id
    """
)

# Finished (or failed for good) tasks that something planned now chains on.
_ANCHORS = sa.text(
    """
    SELECT t.id, t.virtual_machine_id, a.status
    FROM processing.processing_task t
    LEFT JOIN processing.task_attempt a ON a.task_id = t.id
    WHERE t.id = ANY(CAST(:ids AS bigint[]))
    """
)

_PENDING_PAIRS = sa.text(
    """
    SELECT i.id AS input_id, i.source_product_id, p.task_id AS producing_task_id,
           r.name AS routine
    FROM processing.input i
    JOIN processing.processing_routine r ON r.input_product_type = i.product_type
    LEFT JOIN processing.product p ON p.id = i.source_product_id
    WHERE NOT EXISTS (
        SELECT 1 FROM processing.processing_task t WHERE t.input_id = i.id AND t.routine = r.name
    )
    ORDER BY i.id, r.name
    """
)

_UPDATE_TASK = sa.text(
    """
    UPDATE processing.processing_task
    SET virtual_machine_id = :vm_id, planned_start = :start, planned_end = :end,
        unplaced_reason = :reason
    WHERE id = :id
    """
)

_INSERT_TASKS = sa.text(
    """
    INSERT INTO processing.processing_task
        (input_id, upstream_product_id, routine, virtual_machine_id, planned_start, planned_end,
         preceding_task_id, unplaced_reason)
    SELECT * FROM unnest(
        CAST(:input_id AS bigint[]), CAST(:upstream AS bigint[]), CAST(:routine AS text[]),
        CAST(:vm_id AS bigint[]), CAST(:start AS timestamptz[]), CAST(:end AS timestamptz[]),
        CAST(:preceding AS bigint[]), CAST(:reason AS text[])
    )
    ON CONFLICT DO NOTHING
    RETURNING id, input_id, routine, preceding_task_id
    """
)

_INSERT_VMS = sa.text(
    """
    INSERT INTO processing.virtual_machine (name, flavour, cpu, ram_mb, storage_gb)
    SELECT u.name, f.name, f.cpu, f.ram_mb, f.storage_gb
    FROM unnest(CAST(:names AS text[]), CAST(:flavours AS text[])) AS u(name, flavour)
    JOIN processing.vm_flavour f ON f.name = u.flavour
    RETURNING id, name
    """
)

_NAME_VMS = sa.text(
    """
    UPDATE processing.virtual_machine SET name = 'vm-' || id
    WHERE id = ANY(CAST(:ids AS bigint[]))
    RETURNING id, name
    """
)

_RELEASE_EMPTY_VMS = sa.text(
    """
    DELETE FROM processing.virtual_machine v
    WHERE v.state = 'planned'
      AND NOT EXISTS (
        SELECT 1 FROM processing.processing_task t WHERE t.virtual_machine_id = v.id
      )
    """
)


# ---------------------------------------------------------------------------------------------
# Building the planner's input


@dataclass(frozen=True)
class _Routine:
    name: str
    cpu: float
    ram_mb: int
    storage_gb: float
    duration_s: int
    next_routine: str | None
    max_attempts: int


@dataclass
class _Request:
    """One task to plan: an existing not-started row (`task_id`) or a new one."""

    key: str
    routine: str
    task_id: int | None = None
    input_id: int | None = None
    upstream_product_id: int | None = None
    preceding_task_id: int | None = None  # an existing task
    preceding_key: str | None = None  # a new task of the same run
    depth: int = 0  # 0 for a chain head among the new tasks
    preceding: str | None = None  # planner key of the task before it
    same_vm: bool = False
    blocked_reason: str | None = None


def _task_key(task_id: int) -> str:
    return f"task-{task_id}"


def _chain(routines: dict[str, _Routine], first: str) -> list[str]:
    """A routine and its successors by `next_routine`, stopping before a cycle repeats."""
    out: list[str] = []
    name: str | None = first
    while name is not None and name not in out and name in routines:
        out.append(name)
        name = routines[name].next_routine
    return out


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def orchestrate(
    engine: sa.Engine, settings: OrchestratorSettings, now: datetime | None = None
) -> PlanningReport:
    """Plan every pending input and not-started task, and store the plan; see the module doc."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PLANNING_LOCK_KEY})
        conn.execute(_LOCK_NOT_STARTED).all()
        adopted = conn.execute(_ADOPT_PRODUCT_INPUTS).rowcount
        if now is None:
            now = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
        assert now is not None
        report = PlanningReport(planned_at=now, adopted_inputs=max(adopted, 0))
        _plan_and_store(conn, settings, now, report)
    return report


def _plan_and_store(
    conn: sa.Connection, settings: OrchestratorSettings, now: datetime, report: PlanningReport
) -> None:
    routines = {
        r.name: _Routine(
            r.name,
            r.cpu,
            r.ram_mb,
            r.storage_gb,
            r.expected_duration_s,
            r.next_routine,
            r.max_attempts,
        )
        for r in conn.execute(_ROUTINES)
    }
    flavours = [
        Flavour(f.name, Resources(f.cpu, f.ram_mb, f.storage_gb)) for f in conn.execute(_FLAVOURS)
    ]
    vm_rows = conn.execute(_VMS, {"states": list(ACTIVE_VM_STATES)}).all()
    vm_by_id = {vm.id: vm for vm in vm_rows}
    busy: dict[int, list[BusySlot]] = defaultdict(list)

    tasks = conn.execute(_TASKS).all()
    requests: dict[str, _Request] = {}
    # Dispatched tasks something may chain on: id -> (running | finished | failed, VM id)
    anchors: dict[int, tuple[str, int | None]] = {}

    for t in tasks:
        routine = routines[t.routine]
        if not t.dispatched:
            requests[_task_key(t.id)] = _Request(
                key=_task_key(t.id),
                routine=t.routine,
                task_id=t.id,
                input_id=t.input_id,
                preceding_task_id=t.preceding_task_id,
            )
            continue
        anchors[t.id] = ("running", t.virtual_machine_id)
        if t.virtual_machine_id not in vm_by_id:
            continue
        if t.status in ERROR_STATUSES or t.planned_end is None:
            end = routine.duration_s  # it runs again from the start
        else:
            # rounded up: a successor planned at this end never starts before the running task's
            # planned end (truncating let it start up to a second early)
            end = max(math.ceil((t.planned_end - now).total_seconds()), settings.overrun_s)
        busy[t.virtual_machine_id].append(
            BusySlot(
                0, end, Resources(routine.cpu, routine.ram_mb, routine.storage_gb), _task_key(t.id)
            )
        )
        report.fixed_tasks += 1

    # New tasks: each pending pair and its chain of successors.
    pending = conn.execute(_PENDING_PAIRS).all()
    report.pending_pairs = len(pending)
    for pair in pending:
        chain = _chain(routines, pair.routine)
        key = f"input-{pair.input_id}:{pair.routine}"
        requests[key] = _Request(
            key=key,
            routine=pair.routine,
            input_id=pair.input_id,
            upstream_product_id=pair.source_product_id,
            preceding_task_id=pair.producing_task_id,
        )
        for depth, name in enumerate(chain[1:], start=1):
            previous, key = key, f"{key}>{name}"
            requests[key] = _Request(key=key, routine=name, preceding_key=previous, depth=depth)

    wanted = {
        r.preceding_task_id
        for r in requests.values()
        if r.preceding_task_id is not None
        and r.preceding_task_id not in anchors
        and _task_key(r.preceding_task_id) not in requests
    }
    if wanted:
        for row in conn.execute(_ANCHORS, {"ids": sorted(wanted)}):
            state = "finished" if row.status == "processed" else "failed"
            anchors[row.id] = (state, row.virtual_machine_id)

    # Resolve each request's predecessor into the planner's terms.
    finished_anchor_vms: set[tuple[int, int]] = set()
    for request in requests.values():
        if request.preceding_key is not None:
            request.preceding = request.preceding_key
            request.same_vm = settings.successors_on_same_vm
            continue
        pid = request.preceding_task_id
        if pid is None:
            continue
        key = _task_key(pid)
        if key in requests:
            request.preceding = key
            request.same_vm = settings.successors_on_same_vm
            continue
        state, vm_id = anchors.get(pid, ("missing", None))
        if state == "failed":
            request.blocked_reason = f"preceding task {pid} failed after its last attempt"
        elif state == "running" and vm_id in vm_by_id:
            request.preceding = key
            request.same_vm = settings.successors_on_same_vm
        elif state == "finished" and vm_id is not None and vm_id in vm_by_id:
            # A finished task is listed with an empty slot ending at 0, so successors can chain
            # (and stay) on its VM, where its output is.
            request.preceding = key
            request.same_vm = settings.successors_on_same_vm
            finished_anchor_vms.add((pid, vm_id))
        # else: finished on a VM that is gone (or unknown): nothing left to wait for or share.

    # Successors of a blocked task are blocked too.
    changed = True
    while changed:
        changed = False
        for request in requests.values():
            if request.blocked_reason is None and request.preceding in requests:
                before = requests[request.preceding]
                if before.blocked_reason is not None:
                    request.blocked_reason = before.blocked_reason
                    changed = True

    for pid, vm_id in sorted(finished_anchor_vms):
        busy[vm_id].append(BusySlot(0, 0, Resources(0.0, 0, 0.0), _task_key(pid)))

    existing = [
        ExistingVm(
            vm.name,
            Flavour(vm.flavour, Resources(vm.cpu, vm.ram_mb, vm.storage_gb)),
            tuple(busy.get(vm.id, ())),
        )
        for vm in vm_rows
    ]
    to_plan = [r for r in requests.values() if r.blocked_reason is None]
    task_requests = [
        TaskRequest(
            key=r.key,
            cpu=routines[r.routine].cpu,
            ram_mb=routines[r.routine].ram_mb,
            storage_gb=routines[r.routine].storage_gb,
            duration_s=routines[r.routine].duration_s,
            preceding=r.preceding,
            same_vm_as_preceding=r.same_vm and r.preceding is not None,
        )
        for r in to_plan
    ]
    limits = Limits(max_vms=settings.max_vms, horizon_s=settings.horizon_s)
    result: Plan = plan(task_requests, flavours, existing, limits)
    if task_requests and flavours:
        largest = max(
            flavours, key=lambda f: (f.capacity.cpu, f.capacity.ram_mb, f.capacity.storage_gb)
        )
        report.lower_bound = lower_bound(task_requests, largest, limits)

    vm_ids = _store_vms(conn, result, {vm.name: vm.id for vm in vm_rows}, report)
    _store_tasks(conn, requests, result, vm_ids, now, report)
    report.vms_used = len({a.vm_name for a in result.assignments})
    report.vms_released = max(conn.execute(_RELEASE_EMPTY_VMS).rowcount, 0)


def _store_vms(
    conn: sa.Connection, result: Plan, vm_ids: dict[str, int], report: PlanningReport
) -> dict[str, int]:
    """Insert the plan's new VMs, named `vm-<id>`; planner name -> id for every VM."""
    vm_ids = dict(vm_ids)
    if not result.new_vms:
        return vm_ids
    token = uuid.uuid4().hex
    temporary = {f"planning-{token}-{n}": name for n, (name, _) in enumerate(result.new_vms)}
    inserted = conn.execute(
        _INSERT_VMS,
        {"names": list(temporary), "flavours": [flavour for _, flavour in result.new_vms]},
    ).all()
    ids = {row.name: row.id for row in inserted}
    renamed = {row.id: row.name for row in conn.execute(_NAME_VMS, {"ids": list(ids.values())})}
    for temp, planner_name in temporary.items():
        vm_ids[planner_name] = ids[temp]
        report.new_vms.append(renamed[ids[temp]])
    return vm_ids


def _store_tasks(
    conn: sa.Connection,
    requests: dict[str, _Request],
    result: Plan,
    vm_ids: dict[str, int],
    now: datetime,
    report: PlanningReport,
) -> None:
    """Update replanned rows, insert new ones chain level by level, collect the unplaced."""
    where = {a.task_key: a for a in result.assignments}
    reasons = {u.task_key: u.reason for u in result.unplaced}

    def slot(request: _Request) -> tuple[int | None, datetime | None, datetime | None, str | None]:
        if request.blocked_reason is not None:
            return None, None, None, request.blocked_reason
        a = where.get(request.key)
        if a is None:
            return None, None, None, reasons.get(request.key, "not placed by the planner")
        return (
            vm_ids[a.vm_name],
            now + timedelta(seconds=a.start_s),
            now + timedelta(seconds=a.end_s),
            None,
        )

    updates = []
    for request in requests.values():
        if request.task_id is None:
            continue
        vm_id, start, end, reason = slot(request)
        updates.append(
            {"id": request.task_id, "vm_id": vm_id, "start": start, "end": end, "reason": reason}
        )
        report.replanned_tasks += 1
        _count(report, request, vm_id, reason, request.task_id)
    if updates:
        conn.execute(_UPDATE_TASK, updates)

    new_by_depth: dict[int, list[_Request]] = defaultdict(list)
    for request in requests.values():
        if request.task_id is None:
            new_by_depth[request.depth].append(request)
    ids: dict[str, int] = {}
    for depth in sorted(new_by_depth):
        level = []
        for request in new_by_depth[depth]:
            preceding = request.preceding_task_id
            if request.preceding_key is not None:
                preceding = ids.get(request.preceding_key)
                if preceding is None:  # its predecessor's row already existed: not ours to add
                    continue
            level.append((request, preceding, slot(request)))
        if not level:
            continue
        rows = conn.execute(
            _INSERT_TASKS,
            {
                "input_id": [r.input_id for r, _, _ in level],
                "upstream": [r.upstream_product_id for r, _, _ in level],
                "routine": [r.routine for r, _, _ in level],
                "vm_id": [s[0] for _, _, s in level],
                "start": [s[1] for _, _, s in level],
                "end": [s[2] for _, _, s in level],
                "preceding": [p for _, p, _ in level],
                "reason": [s[3] for _, _, s in level],
            },
        ).all()
        by_identity = {(row.input_id, row.preceding_task_id, row.routine): row.id for row in rows}
        for request, preceding, (vm_id, _, _, reason) in level:
            task_id = by_identity.get((request.input_id, preceding, request.routine))
            if task_id is None:
                log.warning(
                    "task %s was planned by someone else meanwhile; kept theirs", request.key
                )
                continue
            ids[request.key] = task_id
            report.new_tasks += 1
            _count(report, request, vm_id, reason, task_id)


def _count(
    report: PlanningReport,
    request: _Request,
    vm_id: int | None,
    reason: str | None,
    task_id: int,
) -> None:
    if vm_id is not None:
        report.placed_tasks += 1
        return
    item = UnplacedTask(task_id, request.input_id, request.routine, reason or "")
    if request.blocked_reason is not None:
        report.blocked.append(item)
    else:
        report.unplaced.append(item)


def summarize_unplaced(items: Sequence[UnplacedTask]) -> dict[str, int]:
    """How many tasks each reason left unplaced, most frequent first."""
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item.reason] += 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
