"""Instances for the planner benchmark whose family parameters are themselves drawn.

A family is a structure (independent tasks, chains, tight horizon) crossed with a kind of profile
(a routine catalogue of 1-6 routines whose tasks share the exact profile, a mixed catalogue of
7-200 routines, or one profile per task). Everything else is drawn per seed: the number of
routines, the size range (tiny to over half a VM), durations (5-120 min), chain templates (2-5
stages, some same-VM), how nearly the chains fill the horizon, horizon tightness (1.2-2x the
longest task, 1.5x included), the share of tasks released late and the number of tasks (100 to
10,000, log-uniform). Times are whole minutes expressed in seconds.

Seeds: ``TUNING_SEEDS`` may be looked at while tuning the planner; ``HELD_OUT_SEEDS`` must not
be: they are only run to report. ``check_plan`` validates a plan without any planner code.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from platform_assets.processing.planner import Flavour, Limits, Plan, Resources, TaskRequest

FLAVOUR = Flavour("m16", Resources(cpu=16.0, ram_mb=64 * 1024, storage_gb=400.0))
STRUCTURES = ("independent", "chains", "tight")
PROFILES = ("catalogue", "mixed", "per_task")
FAMILIES = tuple(f"{p}/{s}" for p in PROFILES for s in STRUCTURES)
TUNING_SEEDS = range(0, 1000)
HELD_OUT_SEEDS = range(100_000, 101_000)
MINUTE = 60


@dataclass
class Instance:
    """One drawn instance: its family, the parameters drawn for it, tasks and limits."""

    family: str
    seed: int
    params: dict[str, Any]
    tasks: list[TaskRequest]
    limits: Limits
    routine_of: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Routine:
    cpu: float
    ram_mb: int
    storage_gb: float
    minutes: int


def _routine(rng: np.random.Generator, lo: float, hi: float, d_lo: int, d_hi: int) -> _Routine:
    """A profile whose dominant share lies in [lo, hi] of the VM; other resources smaller."""
    cap = FLAVOUR.capacity
    dom = int(rng.integers(0, 3))
    top = float(rng.uniform(lo, hi))
    share = top * rng.uniform(0.1, 1.0, size=3)
    share[dom] = top
    cpu = max(0.25, round(float(share[0] * cap.cpu) * 4) / 4)  # quarter cores
    ram_mb = max(128, int(share[1] * cap.ram_mb) // 128 * 128)
    storage = max(0.5, round(float(share[2] * cap.storage_gb), 1))
    return _Routine(cpu, ram_mb, storage, int(rng.integers(d_lo, d_hi + 1)))


def _routines_for(kind: str, n: int, rng: np.random.Generator) -> int:
    if kind == "catalogue":
        return int(rng.integers(1, 7))
    if kind == "mixed":
        return int(min(n, round(math.exp(rng.uniform(math.log(7), math.log(200))))))
    return n


def generate(family: str, seed: int, n: int | None = None, max_tasks: int = 10_000) -> Instance:
    """The instance of ``family`` for ``seed`` (n drawn log-uniform in [100, max_tasks] if None)."""
    kind, structure = family.split("/")
    rng = np.random.default_rng([FAMILIES.index(family), seed])
    if n is None:
        n = int(round(math.exp(rng.uniform(math.log(100), math.log(max_tasks)))))
    # Sizes: the largest dominant share from 5 % to 75 % of a VM, the smallest a part of it.
    hi = float(rng.uniform(0.05, 0.75))
    lo = hi * float(rng.uniform(0.1, 0.7))
    d_lo = int(rng.integers(5, 31))
    d_hi = int(rng.integers(d_lo + 5, 121))
    late = float(rng.choice([0.0, rng.uniform(0.05, 0.6)]))
    params: dict[str, Any] = {
        "tasks": n,
        "max_share": round(hi, 3),
        "min_share": round(lo, 3),
        "minutes": [d_lo, d_hi],
        "released_late": round(late, 3),
    }
    routines_n = _routines_for(kind, n, rng)
    params["routines"] = routines_n if kind != "per_task" else "per task"
    pool = [_routine(rng, lo, hi, d_lo, d_hi) for _ in range(min(routines_n, n))]
    # Catalogues are skewed: a few routines carry most tasks.
    weights = rng.dirichlet(np.full(len(pool), 0.8))

    def pick() -> int:
        if kind == "per_task":
            return -1
        return int(rng.choice(len(pool), p=weights))

    def profile(j: int) -> _Routine:
        return _routine(rng, lo, hi, d_lo, d_hi) if j < 0 else pool[j]

    tasks: list[TaskRequest] = []
    routine_of: dict[str, int] = {}

    def add(key: str, r: _Routine, j: int, **kw: Any) -> None:
        tasks.append(TaskRequest(key, r.cpu, r.ram_mb, r.storage_gb, r.minutes * MINUTE, **kw))
        routine_of[key] = j

    if structure == "independent":
        horizon_min = 8 * 60
        for k in range(n):
            j = pick()
            r = profile(j)
            release = 0
            if rng.random() < late:
                release = int(rng.integers(0, horizon_min - r.minutes + 1))
            add(f"t{k:05d}", r, j, earliest_start_s=release * MINUTE)
        params["horizon_min"] = horizon_min
        return Instance(
            family, seed, params, tasks, Limits(100_000, horizon_min * MINUTE), routine_of
        )

    if structure == "tight":
        drawn = [pick() for _ in range(n)]
        profs = [profile(j) for j in drawn]
        longest = max(p.minutes for p in profs)
        tight = float(rng.choice([1.5, rng.uniform(1.2, 2.0)]))
        horizon_min = max(longest, int(math.ceil(tight * longest)))
        params.update(horizon_min=horizon_min, tightness=round(tight, 3))
        for k, (j, r) in enumerate(zip(drawn, profs, strict=True)):
            release = 0
            if rng.random() < max(late, 0.3):
                release = int(rng.integers(0, horizon_min - r.minutes + 1))
            add(f"t{k:05d}", r, j, earliest_start_s=release * MINUTE)
        return Instance(
            family, seed, params, tasks, Limits(100_000, horizon_min * MINUTE), routine_of
        )

    # chains: templates of 2-5 stages; the longest template nearly fills the horizon.
    templates = []
    for _ in range(int(rng.integers(1, 4))):
        length = int(rng.integers(2, 6))
        templates.append([pick() for _ in range(length)])
    per_task_profiles = kind == "per_task"
    stage_minutes = [
        [
            profile(j).minutes if not per_task_profiles else int(rng.integers(d_lo, d_hi + 1))
            for j in tpl
        ]
        for tpl in templates
    ]
    fill = float(rng.uniform(0.6, 0.97))
    longest = max(sum(m) for m in stage_minutes)
    horizon_min = int(math.ceil(longest / fill))
    same_vm = float(rng.choice([0.0, rng.uniform(0.1, 0.6)]))
    params.update(
        horizon_min=horizon_min,
        chain_fill=round(fill, 3),
        chain_lengths=[len(t) for t in templates],
        same_vm_share=round(same_vm, 3),
    )
    k = 0
    while k < n:
        ti = int(rng.integers(0, len(templates)))
        tpl = templates[ti]
        total = sum(stage_minutes[ti])
        release = 0
        if rng.random() < late:
            release = int(rng.integers(0, horizon_min - total + 1))
        prev: str | None = None
        for stage, j in enumerate(tpl):
            if k >= n:
                break
            r = profile(j)
            if per_task_profiles:
                r = _Routine(r.cpu, r.ram_mb, r.storage_gb, stage_minutes[ti][stage])
            key = f"c{k:05d}"
            add(
                key,
                r,
                j,
                preceding=prev,
                same_vm_as_preceding=bool(prev is not None and rng.random() < same_vm),
                earliest_start_s=release * MINUTE if stage == 0 else 0,
            )
            prev = key
            k += 1
    return Instance(family, seed, params, tasks, Limits(100_000, horizon_min * MINUTE), routine_of)


def check_plan(p: Plan, tasks: Sequence[TaskRequest], flavour: Flavour, limits: Limits) -> None:
    """Independent validation (no planner code): raises AssertionError naming the violation."""
    spec = {t.key: t for t in tasks}
    seen: set[str] = set()
    for a in p.assignments:
        assert a.task_key in spec and a.task_key not in seen, f"task {a.task_key} twice/unknown"
        seen.add(a.task_key)
    for u in p.unplaced:
        assert u.task_key in spec and u.task_key not in seen, f"task {u.task_key} twice"
        seen.add(u.task_key)
    assert seen == set(spec), "every task assigned or unplaced"
    vms = {name for name, _ in p.new_vms}
    assert len(vms) == len(p.new_vms) <= limits.max_vms, "VM names unique, within max_vms"
    where = {a.task_key: a for a in p.assignments}
    per_vm: dict[str, list[tuple[int, int, float, float, float]]] = defaultdict(list)
    for a in p.assignments:
        t = spec[a.task_key]
        assert a.vm_name in vms, f"{a.task_key} on unknown VM {a.vm_name}"
        assert a.end_s - a.start_s == t.duration_s, f"{a.task_key} duration"
        assert t.earliest_start_s <= a.start_s and a.end_s <= limits.horizon_s, (
            f"{a.task_key} window"
        )
        if t.preceding is not None:
            before = where.get(t.preceding)
            assert before is not None, f"{a.task_key} placed, its predecessor not"
            assert a.start_s >= before.end_s, f"{a.task_key} starts before its predecessor ends"
            if t.same_vm_as_preceding:
                assert a.vm_name == before.vm_name, f"{a.task_key} not on its predecessor's VM"
        per_vm[a.vm_name].append((a.start_s, a.end_s, t.cpu, t.ram_mb, t.storage_gb))
    cap = flavour.capacity
    limit = (cap.cpu * (1 + 1e-9) + 1e-9, cap.ram_mb, cap.storage_gb * (1 + 1e-9) + 1e-9)
    for name, items in per_vm.items():
        events = sorted(
            [(s, 1, c, r, g) for s, _, c, r, g in items]
            + [(e, 0, c, r, g) for _, e, c, r, g in items]
        )  # ends (0) before starts (1) at the same instant
        use = [0.0, 0.0, 0.0]
        for _, is_start, c, r, g in events:
            sign = 1 if is_start else -1
            use[0] += sign * c
            use[1] += sign * r
            use[2] += sign * g
            if is_start:
                assert all(use[x] <= limit[x] for x in range(3)), f"{name} over capacity"
