"""Plan quality must not depend on the time unit, on task names or on how a catalogue is split.

Each property compares the planner with itself on an equivalent input, so none of them can be
met by tuning to fixed cases.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_assets.processing.planner import (
    BusySlot,
    ExistingVm,
    Limits,
    Plan,
    TaskRequest,
    first_fit,
    lower_bound,
    plan,
)
from tests.unit.test_planner import BIG, SMALL, check_plan, instances

PROPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Instance = tuple[list[TaskRequest], list[ExistingVm], Limits]


def _scale_task(t: TaskRequest, c: int) -> TaskRequest:
    return TaskRequest(
        t.key, t.cpu, t.ram_mb, t.storage_gb, t.duration_s * c,
        t.preceding, t.same_vm_as_preceding, t.earliest_start_s * c,
    )  # fmt: skip


def _scale(inst: Instance, c: int) -> Instance:
    tasks, existing, limits = inst
    vms = [
        ExistingVm(
            vm.name,
            vm.flavour,
            tuple(
                BusySlot(s.start_s * c, s.end_s * c, s.load, s.task_key)
                for s in map(lambda b: BusySlot(*b), vm.busy)
            ),
        )
        for vm in existing
    ]
    return [_scale_task(t, c) for t in tasks], vms, Limits(limits.max_vms, limits.horizon_s * c)


def _shape(p: Plan) -> tuple[int, int]:
    return len(p.new_vms), len(p.unplaced)


@PROPS
@given(instances(), st.sampled_from([2, 3, 60, 3600]))
def test_scaling_every_time_scales_the_plan_and_nothing_else(inst: Instance, c: int) -> None:
    tasks, existing, limits = inst
    base = plan(tasks, [SMALL, BIG], existing, limits)
    s_tasks, s_existing, s_limits = _scale(inst, c)
    scaled = plan(s_tasks, [SMALL, BIG], s_existing, s_limits)
    check_plan(scaled, s_tasks, [SMALL, BIG], s_existing, s_limits)
    assert scaled.new_vms == base.new_vms
    assert [(a.task_key, a.vm_name, a.start_s, a.end_s) for a in scaled.assignments] == [
        (a.task_key, a.vm_name, a.start_s * c, a.end_s * c) for a in base.assignments
    ]
    assert [u.task_key for u in scaled.unplaced] == [u.task_key for u in base.unplaced]
    assert lower_bound(s_tasks, SMALL, s_limits) == lower_bound(tasks, SMALL, limits)


def _rename(tasks: list[TaskRequest], rnd: random.Random) -> list[TaskRequest]:
    """New, randomly ordered names; links follow (names of started tasks are kept)."""
    fresh = [f"job-{n:03d}" for n in rnd.sample(range(1000), len(tasks))]
    new = {t.key: name for t, name in zip(tasks, fresh, strict=True)}
    return [
        TaskRequest(
            new[t.key],
            t.cpu,
            t.ram_mb,
            t.storage_gb,
            t.duration_s,
            new.get(t.preceding, t.preceding) if t.preceding else None,
            t.same_vm_as_preceding,
            t.earliest_start_s,
        )  # fmt: skip
        for t in tasks
    ]


@PROPS
@given(instances(), st.randoms(use_true_random=False))
def test_renaming_and_reordering_tasks_keeps_the_vm_count(
    inst: Instance, rnd: random.Random
) -> None:
    tasks, existing, limits = inst
    renamed = _rename(tasks, rnd)
    rnd.shuffle(renamed)
    base = plan(tasks, [SMALL], existing, limits)
    other = plan(renamed, [SMALL], existing, limits)
    check_plan(other, renamed, [SMALL], existing, limits)
    assert _shape(other) == _shape(base)


@st.composite
def catalogues(draw: st.DrawFn) -> tuple[list[tuple[float, int, float, int]], list[int], Limits]:
    """A few routines (exact profiles, durations in minutes) and how many tasks each has."""
    routines = draw(
        st.lists(
            st.tuples(
                st.sampled_from([0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 9.0]),
                st.integers(1, 40).map(lambda g: g * 512),
                st.sampled_from([1.0, 10.0, 40.0, 70.0]),
                st.integers(5, 120),
            ),
            min_size=1,
            max_size=6,
        )
    )
    counts = [draw(st.integers(1, 12)) for _ in routines]
    longest = max(r[3] for r in routines)
    horizon = draw(st.sampled_from([8 * 60, max(longest, int(1.5 * longest)), 2 * longest]))
    return routines, counts, Limits(max_vms=200, horizon_s=horizon * 60)


def _catalogue_tasks(
    routines: list[tuple[float, int, float, int]], counts: list[int], ids: list[str]
) -> list[TaskRequest]:
    tasks, k = [], 0
    for (cpu, ram, sto, minutes), n in zip(routines, counts, strict=True):
        for _ in range(n):
            tasks.append(TaskRequest(ids[k], cpu, ram, sto, minutes * 60))
            k += 1
    return tasks


@PROPS
@given(catalogues(), st.randoms(use_true_random=False))
def test_splitting_a_catalogue_into_other_task_ids_keeps_the_vm_count(
    cat: tuple[list[tuple[float, int, float, int]], list[int], Limits], rnd: random.Random
) -> None:
    routines, counts, limits = cat
    n = sum(counts)
    blocked = _catalogue_tasks(routines, counts, [f"r-{k:04d}" for k in range(n)])
    numbers = rnd.sample(range(100_000), n)
    scattered = _catalogue_tasks(routines, counts, [f"{x}" for x in numbers])
    a = plan(blocked, [BIG], [], limits)
    b = plan(scattered, [BIG], [], limits)
    check_plan(b, scattered, [BIG], [], limits)
    assert _shape(a) == _shape(b)
    # Never worse than first fit, in either id order, and never below the bound.
    for tasks in (blocked, scattered):
        assert len(a.new_vms) <= len(first_fit(tasks, BIG, limits).new_vms)
    assert len(a.new_vms) >= lower_bound(blocked, BIG, limits)


@PROPS
@given(catalogues())
def test_a_catalogue_in_minutes_or_seconds_gets_the_same_plan(
    cat: tuple[list[tuple[float, int, float, int]], list[int], Limits],
) -> None:
    routines, counts, limits = cat
    ids = [f"t{k:04d}" for k in range(sum(counts))]
    in_seconds = _catalogue_tasks(routines, counts, ids)
    in_minutes = [
        TaskRequest(t.key, t.cpu, t.ram_mb, t.storage_gb, t.duration_s // 60) for t in in_seconds
    ]
    minutes_limits = Limits(limits.max_vms, limits.horizon_s // 60)
    a = plan(in_seconds, [BIG], [], limits)
    b = plan(in_minutes, [BIG], [], minutes_limits)
    assert a.new_vms == b.new_vms
    assert [(x.task_key, x.vm_name, x.start_s) for x in a.assignments] == [
        (x.task_key, x.vm_name, x.start_s * 60) for x in b.assignments
    ]
