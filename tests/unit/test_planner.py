"""Planner behaviour: table-driven cases for the rules a user sees, properties for the rest."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_assets.processing.planner import (
    Assignment,
    BusySlot,
    ExistingVm,
    Flavour,
    Limits,
    Plan,
    PlanningInputError,
    Resources,
    TaskRequest,
    first_fit,
    lower_bound,
    plan,
)

SMALL = Flavour("small", Resources(cpu=8.0, ram_mb=32 * 1024, storage_gb=100.0))
BIG = Flavour("big", Resources(cpu=16.0, ram_mb=64 * 1024, storage_gb=400.0))
HOUR = Limits(max_vms=10, horizon_s=3600)
TOL = 1e-9


def task(key: str, cpu: float = 1.0, ram_gb: float = 1.0, sto: float = 1.0, dur: int = 600, **kw):
    return TaskRequest(key, cpu, int(ram_gb * 1024), sto, dur, **kw)


def by_key(p: Plan) -> dict[str, Assignment]:
    return {a.task_key: a for a in p.assignments}


def reasons(p: Plan) -> dict[str, str]:
    return {u.task_key: u.reason for u in p.unplaced}


# --- invariants shared by table and property tests ------------------------------------------


def check_plan(
    p: Plan,
    tasks: list[TaskRequest],
    flavours: list[Flavour],
    existing: list[ExistingVm],
    limits: Limits,
) -> None:
    """Everything a caller relies on, whatever the input."""
    keys = [t.key for t in tasks]
    assigned = [a.task_key for a in p.assignments]
    unplaced = [u.task_key for u in p.unplaced]
    assert sorted(assigned + unplaced) == sorted(keys), "each task exactly once"
    assert not set(assigned) & set(unplaced)
    assert all(u.reason for u in p.unplaced)

    caps = {vm.name: vm.flavour.capacity for vm in existing}
    flavour_by_name = {f.name: f for f in flavours}
    for name, flavour_name in p.new_vms:
        assert name not in caps, "new VM names are unique"
        caps[name] = flavour_by_name[flavour_name].capacity
    assert len(existing) + len(p.new_vms) <= max(limits.max_vms, len(existing))
    used = {a.vm_name for a in p.assignments}
    assert used <= set(caps)
    assert {name for name, _ in p.new_vms} <= used, "no idle new VM"

    spec = {t.key: t for t in tasks}
    for a in p.assignments:
        t = spec[a.task_key]
        assert a.end_s - a.start_s == t.duration_s
        assert a.start_s >= t.earliest_start_s >= 0
        assert a.end_s <= limits.horizon_s, "ends within the horizon"

    # Capacity at every instant: usage only rises at a start, so checking starts is enough.
    loads: dict[str, list[tuple[int, int, float, float, float]]] = defaultdict(list)
    for a in p.assignments:
        t = spec[a.task_key]
        loads[a.vm_name].append((a.start_s, a.end_s, t.cpu, t.ram_mb, t.storage_gb))
    for vm in existing:
        for b in vm.busy:
            slot = BusySlot(*b)
            loads[vm.name].append(
                (slot.start_s, slot.end_s, slot.load.cpu, slot.load.ram_mb, slot.load.storage_gb)
            )
    for name, items in loads.items():
        cap = caps[name]
        placed = [a for a in p.assignments if a.vm_name == name]
        # Usage only rises where something starts; check those instants while a task of ours runs
        # (the started load alone may already be over capacity: that is the caller's input).
        for s in sorted({max(i[0], 0) for i in items}):
            if not any(a.start_s <= s < a.end_s for a in placed):
                continue
            now = [i for i in items if i[0] <= s < i[1]]
            assert sum(i[2] for i in now) <= cap.cpu * (1 + TOL) + TOL, (name, s)
            assert sum(i[3] for i in now) <= cap.ram_mb, (name, s)
            assert sum(i[4] for i in now) <= cap.storage_gb * (1 + TOL) + TOL, (name, s)

    started_end = {
        BusySlot(*b).task_key: (vm.name, BusySlot(*b).end_s) for vm in existing for b in vm.busy
    }
    where = by_key(p)
    for t in tasks:
        if t.key not in where or t.preceding is None:
            continue
        a = where[t.key]
        if t.preceding in where:
            before = where[t.preceding]
            assert a.start_s >= before.end_s, "chain order"
            if t.same_vm_as_preceding:
                assert a.vm_name == before.vm_name, "same VM as predecessor"
        else:
            assert t.preceding in started_end, "predecessor of a placed task is known"
            vm_name, end = started_end[t.preceding]
            assert a.start_s >= end
            if t.same_vm_as_preceding:
                assert a.vm_name == vm_name


# --- table-driven behaviour ---------------------------------------------------------------


def test_single_task_goes_on_one_new_vm_at_time_zero() -> None:
    p = plan([task("a")], [SMALL], [], HOUR)
    assert p.assignments == (Assignment("a", "new-vm-1", 0, 600),)
    assert p.new_vms == (("new-vm-1", "small"),)
    assert p.unplaced == ()


@pytest.mark.parametrize(
    ("tasks", "horizon", "vms"),
    [
        # two 6-CPU tasks cannot overlap on 8 CPUs but fit one after the other
        ([task("a", cpu=6, dur=1800), task("b", cpu=6, dur=1800)], 3600, 1),
        # same tasks, no time to run them back to back
        ([task("a", cpu=6, dur=1800), task("b", cpu=6, dur=1800)], 3000, 2),
        # RAM is the binding resource
        ([task("a", ram_gb=20, dur=3600), task("b", ram_gb=20, dur=3600)], 3600, 2),
        # storage is the binding resource
        ([task("a", sto=60, dur=3600), task("b", sto=60, dur=3600)], 3600, 2),
        # eight 1-CPU tasks share one VM concurrently
        ([task(f"t{i}", cpu=1, dur=3600) for i in range(8)], 3600, 1),
        ([task(f"t{i}", cpu=1, dur=3600) for i in range(9)], 3600, 2),
    ],
)
def test_vm_count_follows_the_binding_resource(
    tasks: list[TaskRequest], horizon: int, vms: int
) -> None:
    limits = Limits(max_vms=10, horizon_s=horizon)
    p = plan(tasks, [SMALL], [], limits)
    check_plan(p, tasks, [SMALL], [], limits)
    assert len(p.new_vms) == vms
    assert p.unplaced == ()


@pytest.mark.parametrize(
    ("tasks", "limits", "expected"),
    [
        (
            [task("x", ram_gb=64)],
            HOUR,
            {"x": "needs 64 GB RAM, largest flavour has 32 GB"},
        ),
        ([task("x", cpu=12)], HOUR, {"x": "needs 12 CPU, largest flavour has 8 CPU"}),
        (
            [task("x", sto=500)],
            HOUR,
            {"x": "needs 500 GB storage, largest flavour has 100 GB"},
        ),
        (
            [task("x", dur=7200)],
            HOUR,
            {"x": "would end after the horizon (needs 7200 s, horizon 3600 s)"},
        ),
        (
            [task("x", dur=1200, earliest_start_s=3000)],
            HOUR,
            {
                "x": "would end after the horizon (earliest start 3000 s, needs 1200 s, horizon 3600 s)"
            },
        ),
        (
            [task("a", dur=3000), task("b", dur=1000, preceding="a")],
            HOUR,
            {
                "b": "would end after the horizon (earliest start 3000 s, needs 1000 s, horizon 3600 s)"
            },
        ),
        (
            [task("a", ram_gb=64), task("b", preceding="a"), task("c", preceding="b")],
            HOUR,
            {
                "a": "needs 64 GB RAM, largest flavour has 32 GB",
                "b": "preceding task a is unplaced",
                "c": "preceding task b is unplaced",
            },
        ),
        (
            # One VM holds a or the chain b -> c: the plan keeps the chain (one task unplaced).
            [task("a", cpu=8, dur=3600), task("b", cpu=8, dur=3000), task("c", preceding="b")],
            Limits(max_vms=1, horizon_s=3600),
            {"a": "max_vms=1 reached"},
        ),
        (
            [task("a", preceding="ghost")],
            HOUR,
            {"a": "preceding task ghost is neither requested nor started on an existing VM"},
        ),
        (
            [task("a", preceding="b"), task("b", preceding="a"), task("c", preceding="a")],
            HOUR,
            {
                "a": "preceding tasks form a cycle (a -> b -> a)",
                "b": "preceding tasks form a cycle (a -> b -> a)",
                "c": "preceding task a is unplaced",
            },
        ),
    ],
)
def test_unplaced_tasks_name_the_limit(
    tasks: list[TaskRequest], limits: Limits, expected: dict[str, str]
) -> None:
    p = plan(tasks, [SMALL], [], limits)
    check_plan(p, tasks, [SMALL], [], limits)
    assert reasons(p) == expected


def test_capacity_reason_when_no_single_flavour_has_everything() -> None:
    cpu_heavy = Flavour("cpu", Resources(cpu=32, ram_mb=8 * 1024, storage_gb=100))
    ram_heavy = Flavour("ram", Resources(cpu=4, ram_mb=128 * 1024, storage_gb=100))
    p = plan([task("x", cpu=16, ram_gb=64)], [cpu_heavy, ram_heavy], [], HOUR)
    assert reasons(p) == {
        "x": "needs 16 CPU, 64 GB RAM, 1 GB storage at once, no flavour has all of it"
    }


def test_chain_runs_in_order_and_shares_the_vm_when_asked() -> None:
    tasks = [
        task("a", cpu=4, dur=600),
        task("b", cpu=4, dur=600, preceding="a", same_vm_as_preceding=True),
        task("c", cpu=4, dur=600, preceding="b"),
        task("d", cpu=4, dur=600, preceding="b", same_vm_as_preceding=True),
    ]
    p = plan(tasks, [SMALL], [], HOUR)
    check_plan(p, tasks, [SMALL], [], HOUR)
    where = by_key(p)
    assert where["b"].start_s >= where["a"].end_s
    assert where["b"].vm_name == where["a"].vm_name == where["d"].vm_name
    assert where["c"].start_s >= where["b"].end_s
    assert len(p.new_vms) == 1


def test_earliest_start_is_respected() -> None:
    p = plan([task("a", earliest_start_s=900)], [SMALL], [], HOUR)
    assert by_key(p)["a"].start_s == 900


def test_started_tasks_are_fixed_load_on_their_vm() -> None:
    busy = (BusySlot(-600, 1800, Resources(6, 1024, 10), "running"),)
    vm = ExistingVm("vm-a", SMALL, busy)
    tasks = [task("x", cpu=4, dur=600), task("y", cpu=2, dur=600)]
    p = plan(tasks, [SMALL], [vm], HOUR)
    check_plan(p, tasks, [SMALL], [vm], HOUR)
    where = by_key(p)
    assert p.new_vms == (), "the existing VM has room once the started task ends"
    assert where["y"] == Assignment("y", "vm-a", 0, 600), "2 CPUs are free beside it"
    assert where["x"].start_s >= 1800, "4 CPUs are free only after it"


def test_plain_tuples_are_accepted_as_busy_slots() -> None:
    vm = ExistingVm("vm-a", SMALL, ((0, 3600, Resources(8, 1024, 10)),))  # type: ignore[arg-type]
    p = plan([task("x")], [SMALL], [vm], HOUR)
    assert by_key(p)["x"].vm_name == "new-vm-1"


def test_chain_on_a_started_task_stays_on_its_vm() -> None:
    busy = (BusySlot(-600, 1200, Resources(2, 1024, 10), "ingest"),)
    vm = ExistingVm("vm-a", SMALL, busy)
    tasks = [
        task("process", dur=600, preceding="ingest", same_vm_as_preceding=True),
        task("publish", dur=600, preceding="ingest"),
    ]
    p = plan(tasks, [SMALL], [vm], HOUR)
    check_plan(p, tasks, [SMALL], [vm], HOUR)
    assert by_key(p)["process"] == Assignment("process", "vm-a", 1200, 1800)
    assert by_key(p)["publish"].start_s >= 1200


def test_chain_on_a_started_task_that_cannot_fit_its_vm() -> None:
    busy = (BusySlot(0, 3000, Resources(8, 1024, 10), "ingest"),)
    vm = ExistingVm("vm-a", SMALL, busy)
    tasks = [task("process", dur=1200, preceding="ingest", same_vm_as_preceding=True)]
    p = plan(tasks, [SMALL], [vm], HOUR)
    assert reasons(p) == {
        "process": "would end after the horizon (earliest start 3000 s, needs 1200 s, horizon 3600 s)"
    }
    bigger = [task("process", cpu=12, preceding="ingest", same_vm_as_preceding=True)]
    p = plan(bigger, [BIG], [vm], HOUR)
    assert reasons(p) == {
        "process": "needs 12 CPU, vm-a (same VM as preceding task ingest) has 8 CPU"
    }


def test_existing_vms_count_towards_max_vms() -> None:
    vm = ExistingVm("vm-a", SMALL, (BusySlot(0, 3600, Resources(8, 1024, 10)),))
    p = plan([task("x")], [SMALL], [vm], Limits(max_vms=1, horizon_s=3600))
    assert reasons(p) == {"x": "max_vms=1 reached"}


def test_new_vms_get_the_smallest_flavour_that_holds_their_peak() -> None:
    tasks = [task("light", cpu=2), task("heavy", cpu=12, dur=3600)]
    p = plan(tasks, [SMALL, BIG], [], HOUR)
    check_plan(p, tasks, [SMALL, BIG], [], HOUR)
    assert len(p.new_vms) == 1
    assert p.new_vms[0][1] == "big"
    p = plan([task("light", cpu=2)], [SMALL, BIG], [], HOUR)
    assert p.new_vms == (("new-vm-1", "small"),)


def test_new_vm_names_avoid_existing_names() -> None:
    vm = ExistingVm("new-vm-1", SMALL, (BusySlot(0, 3600, Resources(8, 1024, 10)),))
    p = plan([task("x")], [SMALL], [vm], HOUR)
    assert p.new_vms == (("new-vm-2", "small"),)


@pytest.mark.parametrize(
    "tasks",
    [
        [task("a"), task("a")],
        [task("a", dur=0)],
        [task("a", cpu=-1)],
        [task("a", earliest_start_s=-5)],
    ],
)
def test_malformed_input_raises_with_the_task_key(tasks: list[TaskRequest]) -> None:
    with pytest.raises(PlanningInputError, match="'a'"):
        plan(tasks, [SMALL], [], HOUR)


def test_requesting_a_started_task_again_is_an_error() -> None:
    vm = ExistingVm("vm-a", SMALL, (BusySlot(0, 60, Resources(1, 1, 1), "a"),))
    with pytest.raises(PlanningInputError, match="'a'"):
        plan([task("a")], [SMALL], [vm], HOUR)


def test_first_fit_keeps_input_order() -> None:
    # Big task last: first fit puts the small ones first and needs a second VM for the big one.
    tasks = [task("s1", cpu=3, dur=3600), task("s2", cpu=3, dur=3600), task("b", cpu=6, dur=1800)]
    tasks += [task("b2", cpu=6, dur=1800)]
    ff = first_fit(tasks, SMALL, HOUR)
    check_plan(ff, tasks, [SMALL], [], HOUR)
    assert by_key(ff)["s1"].vm_name == by_key(ff)["s2"].vm_name == "new-vm-1"
    assert len(ff.new_vms) == 2
    assert len(plan(tasks, [SMALL], [], HOUR).new_vms) == 2


@pytest.mark.parametrize(
    ("tasks", "horizon", "bound"),
    [
        ([], 3600, 0),
        ([task("a", cpu=1, dur=60)], 3600, 1),
        # area: 20 tasks x 4 CPU x 1 h on 8-CPU VMs for 1 h
        ([task(f"t{i}", cpu=4, dur=3600) for i in range(20)], 3600, 10),
        # five tasks of 5 CPU for 40 min in 1 h: area says 3.5, but no two fit together
        ([task(f"t{i}", cpu=5, dur=2400) for i in range(5)], 3600, 5),
        # chain forced to overlap: each of these must run during [1200, 2400)
        ([task(f"t{i}", cpu=5, dur=2400, earliest_start_s=0) for i in range(3)], 3600, 3),
        # time lanes: 4 tasks of 2 CPU run at once on 8 CPU, and in 1 h a 40-min task leaves
        # room beside it in time for nothing here, two 25-min tasks fit one after the other:
        # 12 + 6 lanes = 4.5 VMs, where the area says 3.25 and no instant forces more than 3
        (
            [task(f"l{i}", cpu=2, dur=2400) for i in range(12)]
            + [task(f"s{i}", cpu=2, dur=1500) for i in range(12)],
            3600,
            5,
        ),
        # tasks no flavour can hold are left out of the bound
        ([task("big", cpu=99)], 3600, 0),
    ],
)
def test_lower_bound(tasks: list[TaskRequest], horizon: int, bound: int) -> None:
    limits = Limits(max_vms=100, horizon_s=horizon)
    assert lower_bound(tasks, SMALL, limits) == bound
    if tasks:
        assert len(plan(tasks, [SMALL], [], limits).new_vms) >= bound


def _fewest_bins(sizes: list[int], capacity: int) -> int:
    """Exact 1D bin packing by exhaustive search (a handful of items)."""
    sizes = sorted(sizes, reverse=True)
    best = len(sizes)

    def place(k: int, bins: list[int]) -> None:
        nonlocal best
        if len(bins) >= best:
            return
        if k == len(sizes):
            best = len(bins)
            return
        for b in range(len(bins)):
            if bins[b] + sizes[k] <= capacity:
                bins[b] += sizes[k]
                place(k + 1, bins)
                bins[b] -= sizes[k]
        bins.append(sizes[k])
        place(k + 1, bins)
        bins.pop()

    place(0, [])
    return best


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 2, 4]), st.lists(st.integers(1, 60), min_size=1, max_size=9))
def test_lower_bound_never_exceeds_the_optimum(per_vm: int, minutes: list[int]) -> None:
    # per_vm tasks of 8 / per_vm CPU run at once on an 8-CPU VM, so a VM is per_vm machines and
    # the optimum is ceil(bins / per_vm), bins being the exact packing of the durations into 1 h.
    tasks = [task(f"t{i}", cpu=8 / per_vm, dur=m * 60) for i, m in enumerate(minutes)]
    limits = Limits(max_vms=100, horizon_s=3600)
    optimum = -(-_fewest_bins(minutes, 60) // per_vm)
    assert (
        lower_bound(tasks, SMALL, limits)
        <= optimum
        <= len(plan(tasks, [SMALL], [], limits).new_vms)
    )


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([1, 2, 4]), st.integers(2, 40), st.integers(1, 40), st.integers(200, 700))
def test_bound_counts_whole_tasks_per_lane(per_vm: int, n: int, d: int, horizon: int) -> None:
    # n identical tasks of d minutes, per_vm at a time on a VM: each of a VM's per_vm lanes
    # holds floor(horizon / d) of them, so ceil(n / (per_vm x that)) VMs are needed and enough.
    # Time alone (n x d / horizon) says less whenever horizon / d is not whole.
    tasks = [task(f"t{i:02d}", cpu=8 / per_vm, dur=d * 60) for i in range(n)]
    limits = Limits(max_vms=100, horizon_s=horizon * 60)
    optimum = -(-n // (per_vm * (horizon // d)))
    assert lower_bound(tasks, SMALL, limits) == optimum
    assert len(plan(tasks, [SMALL], [], limits).new_vms) == optimum


def test_bound_sees_that_a_lane_of_27_minute_tasks_holds_17() -> None:
    # A tuning catalogue: 279 tasks of 27 minutes needing 62 % of a VM's RAM run one at a time,
    # 17 to an 8-hour lane: 17 VMs, where their time (15.7 horizons) said 16.
    tasks = [TaskRequest(f"a{k:03d}", 1.5, 40448, 88.4, 27 * 60) for k in range(279)]
    tasks += [TaskRequest(f"b{k:02d}", 8.75, 24576, 123.8, 36 * 60) for k in range(14)]
    limits = Limits(max_vms=100, horizon_s=8 * 3600)
    assert lower_bound(tasks, BIG, limits) == 17
    assert len(plan(tasks, [BIG], [], limits).new_vms) == 17


# --- properties ---------------------------------------------------------------------------


@st.composite
def instances(draw: st.DrawFn) -> tuple[list[TaskRequest], list[ExistingVm], Limits]:
    horizon = draw(st.integers(20, 200))
    n = draw(st.integers(1, 12))
    tasks: list[TaskRequest] = []
    for i in range(n):
        pred = None
        same = False
        if i and draw(st.booleans()):
            pred = f"t{draw(st.integers(0, i - 1)):02d}"
            same = draw(st.booleans())
        tasks.append(
            TaskRequest(
                key=f"t{i:02d}",
                cpu=draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 9.0])),
                ram_mb=draw(st.integers(256, 40 * 1024)),
                storage_gb=draw(st.floats(0, 120, allow_nan=False).map(lambda x: round(x, 1))),
                duration_s=draw(st.integers(1, 80)),
                preceding=pred,
                same_vm_as_preceding=same,
                earliest_start_s=draw(st.integers(0, 60)),
            )
        )
    existing: list[ExistingVm] = []
    for j in range(draw(st.integers(0, 2))):
        slots = []
        for k in range(draw(st.integers(0, 3))):
            start = draw(st.integers(-30, horizon))
            slots.append(
                BusySlot(
                    start,
                    start + draw(st.integers(1, 100)),
                    Resources(draw(st.floats(0, 8)), draw(st.integers(0, 32 * 1024)), 10.0),
                    f"s{j}{k}" if draw(st.booleans()) else None,
                )
            )
        existing.append(ExistingVm(f"vm{j}", SMALL, tuple(slots)))
    # Some tasks chain onto started ones.
    started = [s.task_key for vm in existing for s in vm.busy if s.task_key]
    chain_on_started = draw(st.booleans())
    if started and chain_on_started:
        i = draw(st.integers(0, n - 1))
        t = tasks[i]
        tasks[i] = TaskRequest(
            t.key, t.cpu, t.ram_mb, t.storage_gb, t.duration_s,
            draw(st.sampled_from(started)), draw(st.booleans()), t.earliest_start_s,
        )  # fmt: skip
    max_vms = draw(st.integers(len(existing), len(existing) + 6))
    order = draw(st.permutations(tasks))
    return list(order), existing, Limits(max_vms=max_vms, horizon_s=horizon)


PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(instances())
def test_plan_invariants_hold(inst: tuple[list[TaskRequest], list[ExistingVm], Limits]) -> None:
    tasks, existing, limits = inst
    p = plan(tasks, [SMALL], existing, limits)
    check_plan(p, tasks, [SMALL], existing, limits)


@PROPS
@given(instances(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_and_ignores_input_order(
    inst: tuple[list[TaskRequest], list[ExistingVm], Limits], rnd: random.Random
) -> None:
    tasks, existing, limits = inst
    first = plan(tasks, [SMALL, BIG], existing, limits)
    assert plan(tasks, [SMALL, BIG], existing, limits) == first
    shuffled = list(tasks)
    rnd.shuffle(shuffled)
    assert plan(shuffled, [BIG, SMALL], existing, limits) == first


@PROPS
@given(instances())
def test_no_worse_than_first_fit(inst: tuple[list[TaskRequest], list[ExistingVm], Limits]) -> None:
    tasks, _, limits = inst
    many = Limits(max_vms=100, horizon_s=limits.horizon_s)
    ours = plan(tasks, [SMALL], [], many)
    base = first_fit(tasks, SMALL, many)
    check_plan(base, tasks, [SMALL], [], many)
    assert (len(ours.unplaced), len(ours.new_vms)) <= (len(base.unplaced), len(base.new_vms))
    assert len(ours.new_vms) >= lower_bound(tasks, SMALL, many) or ours.unplaced


@PROPS
@given(instances())
def test_reasons_match_the_input(inst: tuple[list[TaskRequest], list[ExistingVm], Limits]) -> None:
    tasks, existing, limits = inst
    p = plan(tasks, [SMALL], existing, limits)
    spec = {t.key: t for t in tasks}
    for u in p.unplaced:
        t = spec[u.task_key]
        if u.reason.startswith("needs") and "RAM," in u.reason:
            assert t.ram_mb > SMALL.capacity.ram_mb
        if u.reason.startswith("would end after the horizon"):
            assert f"needs {t.duration_s} s" in u.reason
            assert f"horizon {limits.horizon_s} s" in u.reason
        if u.reason.startswith("preceding task") and u.reason.endswith("is unplaced"):
            assert t.preceding in reasons(p)
        if u.reason.startswith("max_vms="):
            assert u.reason == f"max_vms={limits.max_vms} reached"


# --- improvement by ejection chains ---------------------------------------------------------


@PROPS
@given(instances())
def test_draining_a_vm_keeps_the_plan_valid_or_changes_nothing(
    inst: tuple[list[TaskRequest], list[ExistingVm], Limits],
) -> None:
    from platform_assets.processing.planner.constructions import _unit_key
    from platform_assets.processing.planner.improvement import _Schedule
    from platform_assets.processing.planner.model import _as_vec
    from platform_assets.processing.planner.preprocessing import _prepare

    tasks, existing, limits = inst
    prob = _prepare(tasks, [_as_vec(SMALL.capacity)], existing, limits)
    sched = _Schedule(prob, [SMALL], existing, limits)
    sched.construct(list(range(len(prob.comps))))
    before = sched.to_plan()
    for v in sched.new_vms():
        emptied = sched.drain(v, sched.fleet.work + 1_000_000, _unit_key(prob))
        after = sched.to_plan()
        check_plan(after, tasks, [SMALL], existing, limits)
        assert after.unplaced == before.unplaced
        if emptied:
            assert len(after.new_vms) == len(before.new_vms) - 1
        else:
            assert after == before, "a failed drain is undone exactly"
        before = after


def _tight_instance(n: int, seed: int) -> tuple[list[TaskRequest], Limits]:
    """Long tasks released early in a short horizon, some chained: most must overlap."""
    rnd = random.Random(seed)
    tasks = []
    for i in range(n):
        minutes = rnd.randint(30, 100)
        chained = i > 0 and rnd.random() < 0.15
        tasks.append(
            TaskRequest(
                f"t{i:04d}",
                round(rnd.uniform(0.5, 4), 2),
                int(rnd.uniform(1, 16) * 1024),
                round(rnd.uniform(5, 60), 1),
                (minutes // 3 if chained else minutes) * 60,
                preceding=f"t{i - 1:04d}" if chained else None,
                same_vm_as_preceding=chained and rnd.random() < 0.5,
                earliest_start_s=0 if chained else rnd.randint(0, (120 - minutes) // 2) * 60,
            )
        )
    return tasks, Limits(max_vms=1000, horizon_s=7200)


def test_improvement_is_valid_deterministic_and_not_worse_on_a_mid_size_instance() -> None:
    tasks, limits = _tight_instance(400, seed=5)
    p = plan(tasks, [BIG], [], limits)
    check_plan(p, tasks, [BIG], [], limits)
    assert plan(list(reversed(tasks)), [BIG], [], limits) == p
    assert (
        lower_bound(tasks, BIG, limits)
        <= len(p.new_vms)
        <= len(first_fit(tasks, BIG, limits).new_vms)
    )


def test_improving_three_constructions_beats_improving_the_best_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A tuning instance of the benchmark (147 tasks, one profile each, tight horizon): from the
    # best construction improvement stops at 19 VMs, from another of the three best it reaches 18.
    from benchmarks.planner_generator import FLAVOUR, generate
    from platform_assets.processing.planner import portfolio

    inst = generate("per_task/tight", 1, max_tasks=1000)
    p = plan(inst.tasks, [FLAVOUR], [], inst.limits)
    check_plan(p, inst.tasks, [FLAVOUR], [], inst.limits)
    monkeypatch.setattr(portfolio, "_IMPROVE_TOP", 1)
    alone = plan(inst.tasks, [FLAVOUR], [], inst.limits)
    assert (len(p.new_vms), len(alone.new_vms)) == (18, 19)


# --- tasks that exclude each other --------------------------------------------------------


def test_pack_lanes_fills_bins_where_first_fit_decreasing_does_not() -> None:
    from platform_assets.processing.planner.constructions import _pack_lanes

    # First fit decreasing: {45, 40}, {35, 30, 25}, {25}; exact: {45, 30, 25}, {40, 35, 25}.
    sizes = [45, 40, 35, 30, 25, 25]
    bins = _pack_lanes(sizes, 100)
    assert sorted(j for b in bins for j in b) == list(range(len(sizes)))
    assert sorted(sorted(sizes[j] for j in b) for b in bins) == [[25, 30, 45], [25, 35, 40]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 100), max_size=60), st.integers(100, 150))
def test_pack_lanes_keeps_every_item_once_within_capacity(sizes: list[int], capacity: int) -> None:
    from platform_assets.processing.planner.constructions import _pack_lanes

    bins = _pack_lanes(sizes, capacity)
    assert sorted(j for b in bins for j in b) == list(range(len(sizes)))
    assert all(b and sum(sizes[j] for j in b) <= capacity for b in bins)
    assert _pack_lanes(sizes, capacity) == bins


def test_lanes_on_a_horizon_their_grid_does_not_divide() -> None:
    # Durations with no common step force a coarser grid; a task as long as the horizon no
    # longer fits a lane once rounded up and is placed like any other.
    tasks = [task("a", cpu=10, dur=100_003), task("b", cpu=10, dur=50_000)]
    tasks += [task("c", cpu=10, dur=49_999), task("d", cpu=10, dur=30_001)]
    limits = Limits(max_vms=10, horizon_s=100_003)
    p = plan(tasks, [BIG], [], limits)
    check_plan(p, tasks, [BIG], [], limits)
    assert len(p.new_vms) == 3 and not p.unplaced


def test_tasks_that_exclude_each_other_run_in_full_lanes() -> None:
    # No two 10-core tasks share a 16-core VM at one instant, so each VM runs them in sequence
    # and their 1-3 h durations must fill 8 h lanes almost exactly: 46 lanes hold these 180,
    # where placing them by size needed 47. One-core tasks fit beside them.
    rnd = random.Random(3)
    tasks = [task(f"h{i:03d}", cpu=10, ram_gb=8, dur=rnd.randint(60, 180) * 60) for i in range(180)]
    tasks += [task(f"l{i:03d}", cpu=1, ram_gb=1, dur=rnd.randint(5, 30) * 60) for i in range(360)]
    limits = Limits(max_vms=1000, horizon_s=8 * 3600)
    p = plan(tasks, [BIG], [], limits)
    check_plan(p, tasks, [BIG], [], limits)
    assert len(p.new_vms) == lower_bound(tasks, BIG, limits) == 46
    assert plan(list(reversed(tasks)), [BIG], [], limits) == p


def test_tasks_that_run_two_at_a_time_fill_two_lanes_per_vm() -> None:
    # 6-core tasks on a 16-core VM: two run side by side, never three, so a VM is two 8 h lanes
    # whose 1-3 h durations must add up almost exactly. Lanes reach the bound, 16 VMs; the other
    # constructions and improvement needed 17.
    rnd = random.Random(0)
    tasks = [
        task(f"h{i:03d}", cpu=6, ram_gb=8, sto=10, dur=rnd.randint(60, 180) * 60)
        for i in range(120)
    ]
    tasks += [task(f"l{i:03d}", cpu=1, ram_gb=1, dur=rnd.randint(5, 30) * 60) for i in range(200)]
    limits = Limits(max_vms=1000, horizon_s=8 * 3600)
    p = plan(tasks, [BIG], [], limits)
    check_plan(p, tasks, [BIG], [], limits)
    assert len(p.new_vms) == lower_bound(tasks, BIG, limits) == 16


def test_ejection_lifts_only_the_placed_members_of_a_partly_placed_unit() -> None:
    """Found by hypothesis: a same-VM unit whose branches overload one VM keeps what fits; the
    ejection step then tried to lift its unplaced member and crashed."""
    rows = [
        ("t00", 0.5, 51.0, 40, None, 43),
        ("t01", 0.5, 0.0, 34, "t00", 0),
        ("t02", 0.5, 51.0, 74, None, 0),
        ("t03", 0.5, 0.0, 1, None, 0),
        ("t04", 0.5, 0.0, 1, None, 0),
        ("t05", 0.5, 50.0, 44, None, 0),
        ("t06", 8.0, 0.0, 1, "t00", 0),
        ("t07", 0.5, 0.0, 1, None, 0),
    ]
    tasks = [
        TaskRequest(
            key=key,
            cpu=cpu,
            ram_mb=256,
            storage_gb=storage,
            duration_s=duration,
            preceding=before,
            same_vm_as_preceding=before is not None,
            earliest_start_s=earliest,
        )
        for key, cpu, storage, duration, before, earliest in rows
    ]
    existing = [ExistingVm("vm0", SMALL, ())]
    result = plan(tasks, [SMALL], existing, Limits(max_vms=3, horizon_s=117))
    placed = {a.task_key for a in result.assignments}
    assert placed | {u.task_key for u in result.unplaced} == {t.key for t in tasks}


def test_cpsat_beyond_100_tasks_searches_until_its_deterministic_time() -> None:
    # A tuning instance (104 tasks in chains, one profile each): CP-SAT finds 6 VMs after ~2,600
    # conflicts; capped at 300,000 / cells conflicts (480 here) it stopped and the plan kept 7.
    from benchmarks.planner_generator import FLAVOUR, generate

    inst = generate("per_task/chains", 5, max_tasks=700)
    p = plan(inst.tasks, [FLAVOUR], [], inst.limits)
    check_plan(p, inst.tasks, [FLAVOUR], [], inst.limits)
    assert len(inst.tasks) == 104
    assert len(p.new_vms) == 6


def _lane_ends(prob, lane: list[int]) -> int:
    """When a lane's tasks end, run one after another in its order, each from its release."""
    t = 0
    for i in lane:
        t = max(t, prob.est[i]) + prob.d[i]
    return t


def test_released_tasks_end_lanes_and_ready_ones_fill_them() -> None:
    # 10-core tasks never share a 16-core VM, so each VM runs them one after another. Four are
    # ready at 0 and two released at 60 min, all 40 min long, in 100 min: three lanes hold
    # them (each released task ends one). Lanes used to take only the ready tasks.
    from platform_assets.processing.planner.constructions import _lanes
    from platform_assets.processing.planner.model import _as_vec
    from platform_assets.processing.planner.preprocessing import _prepare

    tasks = [task(f"r{i}", cpu=10, dur=2400) for i in range(4)]
    tasks += [task(f"s{i}", cpu=10, dur=2400, earliest_start_s=3600) for i in range(2)]
    limits = Limits(max_vms=10, horizon_s=6000)
    prob = _prepare(tasks, [_as_vec(BIG.capacity)], [], limits)
    lanes = _lanes(prob, _as_vec(BIG.capacity))
    assert sorted(prob.keys[i] for lane in lanes for i in lane) == sorted(t.key for t in tasks)
    assert len(lanes) == 3
    assert all(_lane_ends(prob, lane) <= prob.horizon for lane in lanes)
    p = plan(tasks, [BIG], [], limits)
    check_plan(p, tasks, [BIG], [], limits)
    assert len(p.new_vms) == lower_bound(tasks, BIG, limits) == 3


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(1, 60), st.integers(0, 99)), min_size=2, max_size=40),
    st.sampled_from([(10.0, 1), (6.0, 2), (4.5, 3), (1.9, 8)]),
)
def test_lanes_keep_each_task_once_and_end_within_the_horizon(
    specs: list[tuple[int, int]], cores_per_vm: tuple[float, int]
) -> None:
    from platform_assets.processing.planner.constructions import _lanes
    from platform_assets.processing.planner.model import _as_vec
    from platform_assets.processing.planner.preprocessing import _prepare

    cores, per_vm = cores_per_vm
    tasks = [
        task(f"t{n:02d}", cpu=cores, dur=minutes * 60, earliest_start_s=release * 60)
        for n, (minutes, release) in enumerate(specs)
    ]
    limits = Limits(max_vms=100, horizon_s=100 * 60)
    prob = _prepare(tasks, [_as_vec(BIG.capacity)], [], limits)
    lanes = _lanes(prob, _as_vec(BIG.capacity), per_vm)
    placed = [i for lane in lanes for i in lane]
    assert len(placed) == len(set(placed))
    assert set(placed) <= set(prob.placeable())
    assert all(lane and _lane_ends(prob, lane) <= prob.horizon for lane in lanes)
    p = plan(tasks, [BIG], [], limits)
    check_plan(p, tasks, [BIG], [], limits)


def test_a_catalogue_with_released_tasks_reaches_its_bound_through_lanes() -> None:
    # A tuning instance (101 tasks, 3 routines, a quarter released late): the main routine
    # takes over a third of a VM's storage, so a VM runs two lanes of it. With the released
    # tasks at the ends of lanes the plan has 3 VMs, the bound; without, 4 after 9 s of search.
    from benchmarks.planner_generator import FLAVOUR, generate

    inst = generate("catalogue/independent", 29, max_tasks=2000)
    p = plan(inst.tasks, [FLAVOUR], [], inst.limits)
    check_plan(p, inst.tasks, [FLAVOUR], [], inst.limits)
    assert len(inst.tasks) == 101
    assert len(p.new_vms) == lower_bound(inst.tasks, FLAVOUR, inst.limits) == 3


def test_a_catalogue_gets_the_lane_counts_its_routines_imply() -> None:
    # Storage decides for the first routine (45 GB: 8 fit side by side on 400 GB, 9 do not),
    # CPU for the second (5 cores: 3 fit on 16); the routine with the most task-time first.
    from platform_assets.processing.planner.model import _as_vec
    from platform_assets.processing.planner.portfolio import _lane_widths
    from platform_assets.processing.planner.preprocessing import _prepare

    tasks = [task(f"a{k}", cpu=1.0, ram_gb=4.0, sto=45.0, dur=1800) for k in range(20)]
    tasks += [task(f"b{k}", cpu=5.0, ram_gb=4.0, sto=10.0, dur=600) for k in range(20)]
    tasks += [task(f"c{k}", cpu=0.25, ram_gb=1.0, sto=1.0, dur=600) for k in range(5)]  # 64 fit
    prob = _prepare(tasks, [_as_vec(BIG.capacity)], [], Limits(100, 8 * 3600))
    assert _lane_widths(prob, _as_vec(BIG.capacity)) == [8, 3]


def test_a_catalogue_whose_main_routine_runs_eight_at_a_time_reaches_its_bound() -> None:
    # A tuning instance (475 tasks, 5 routines, 58 % released late) whose main routine takes
    # 11-12 % of a VM's storage: 8 lanes per VM reach the bound, 4 VMs; with at most 4 lanes
    # per VM the plan had 5.
    from benchmarks.planner_generator import FLAVOUR, generate

    inst = generate("catalogue/independent", 11, max_tasks=2000)
    p = plan(inst.tasks, [FLAVOUR], [], inst.limits)
    check_plan(p, inst.tasks, [FLAVOUR], [], inst.limits)
    assert len(inst.tasks) == 475
    assert len(p.new_vms) == lower_bound(inst.tasks, FLAVOUR, inst.limits) == 4


def test_tasks_that_use_no_resource_are_planned_beside_the_others() -> None:
    # A routine with no demand at all (a bookkeeping step) used to crash the pattern bound:
    # no pattern can say how many of it fit a VM. It fits beside anything.
    tasks = [task(f"z{k}", cpu=0, ram_gb=0, sto=0, dur=600) for k in range(30)]
    tasks += [task(f"b{k}", cpu=9, dur=1800) for k in range(5)]
    limits = Limits(max_vms=10, horizon_s=3600)
    p = plan(tasks, [BIG], [], limits)
    check_plan(p, tasks, [BIG], [], limits)
    assert not p.unplaced
    assert len(p.new_vms) == lower_bound(tasks, BIG, limits) == 3


@pytest.mark.parametrize("long_first", [True, False])
def test_under_a_vm_limit_the_plan_places_the_most_tasks(long_first: bool) -> None:
    # One VM allowed: a task filling it for the whole hour, or ten filling it for 5 minutes
    # each. The orders that put large tasks first placed the long one and left ten out.
    long = [task("long", cpu=16, dur=3600)]
    short = [task(f"s{k}", cpu=16, dur=300) for k in range(10)]
    tasks = long + short if long_first else short + long
    limits = Limits(max_vms=1, horizon_s=3600)
    p = plan(tasks, [BIG], [], limits)
    check_plan(p, tasks, [BIG], [], limits)
    assert [u.task_key for u in p.unplaced] == ["long"]
    assert "max_vms=1" in p.unplaced[0].reason
    assert len(p.unplaced) <= len(first_fit(tasks, BIG, limits).unplaced)


def test_under_a_vm_limit_short_tasks_are_not_left_out_for_a_long_one() -> None:
    # Found by fuzzing: one VM for 60 s; a 59-second task fills most of its storage, the
    # 2-second ones all of it, so they never overlap. The chained successors cannot end in
    # time. Two short tasks fit where the long one alone did; large-first orders kept the
    # long one (4 unplaced instead of 3).
    long = {"cpu": 0, "ram_gb": 0, "sto": 329.965, "dur": 59}
    short = {"cpu": 0, "ram_gb": 64, "sto": 400, "dur": 2}
    tasks = [
        task("a", **long),
        task("a_next", **short, preceding="a", same_vm_as_preceding=True, earliest_start_s=28),
        task("b", **short, earliest_start_s=20),
        task("c", **short),
        task("c_next", **long, preceding="c", same_vm_as_preceding=True),
    ]
    limits = Limits(max_vms=1, horizon_s=60)
    p = plan(tasks, [BIG], [], limits)
    check_plan(p, tasks, [BIG], [], limits)
    assert sorted(a.task_key for a in p.assignments) == ["b", "c"]


@st.composite
def edge_instances(draw: st.DrawFn) -> tuple[list[TaskRequest], Limits]:
    """Demands and durations at the edges: nothing, a sliver, a third, a half, a whole VM."""
    horizon = draw(st.sampled_from([1, 7, 60, 3600]))
    cap = BIG.capacity
    tasks: list[TaskRequest] = []
    for i in range(draw(st.integers(1, 10))):
        share = st.sampled_from([0.0, 1e-6, 1 / 3, 0.5, 1.0])
        pred = None
        if i and draw(st.booleans()):
            pred = f"t{draw(st.integers(0, i - 1)):02d}"
        tasks.append(
            TaskRequest(
                key=f"t{i:02d}",
                cpu=round(draw(share) * cap.cpu, 3),
                ram_mb=int(draw(share) * cap.ram_mb),
                storage_gb=round(draw(share) * cap.storage_gb, 3),
                duration_s=draw(st.sampled_from(sorted({1, max(1, horizon // 2), horizon}))),
                preceding=pred,
                same_vm_as_preceding=pred is not None and draw(st.booleans()),
                earliest_start_s=draw(st.sampled_from([0, 0, horizon // 3, horizon])),
            )
        )
    return tasks, Limits(max_vms=draw(st.sampled_from([0, 1, 2, 1000])), horizon_s=horizon)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edge_instances())
def test_edge_demands_and_durations_give_valid_plans_and_bounds(
    inst: tuple[list[TaskRequest], Limits],
) -> None:
    # Zero-demand tasks once crashed the pattern bound; whole-VM tasks, horizon-long ones and
    # VM limits of 0-2 are where off-by-one mistakes would show.
    tasks, limits = inst
    p = plan(tasks, [BIG], [], limits)
    check_plan(p, tasks, [BIG], [], limits)
    if not p.unplaced:
        assert lower_bound(tasks, BIG, limits) <= len(p.new_vms)


@pytest.mark.parametrize(
    ("family", "seed", "n", "max_vms", "at_most"),
    [
        # Large-first orders left 133 out, first fit in the caller's order 130.
        ("per_task/independent", 1, 300, 3, 81),
        # Reaching the bound (a VM count) ended the search with 100 left out.
        ("mixed/tight", 3, 200, 9, 90),
    ],
)
def test_tuning_instances_allowed_half_their_vms_leave_fewer_tasks_out(
    family: str, seed: int, n: int, max_vms: int, at_most: int
) -> None:
    from benchmarks.planner_generator import FLAVOUR, generate

    inst = generate(family, seed, n=n)
    limits = Limits(max_vms=max_vms, horizon_s=inst.limits.horizon_s)
    p = plan(inst.tasks, [FLAVOUR], [], limits)
    check_plan(p, inst.tasks, [FLAVOUR], [], limits)
    assert len(p.new_vms) == max_vms
    assert len(p.unplaced) <= at_most < len(first_fit(inst.tasks, FLAVOUR, limits).unplaced)
