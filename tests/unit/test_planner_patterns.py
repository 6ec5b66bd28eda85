"""The pattern (configuration LP) bound for routine catalogues: valid, and stronger where it must be.

Validity is checked against an exhaustive search on tiny catalogues with release windows, so a
bound that ever exceeds an optimal plan fails here whatever the benchmark says.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_assets.processing.planner import Limits, TaskRequest, first_fit, lower_bound, plan
from platform_assets.processing.planner.model import _as_vec
from platform_assets.processing.planner.patterns import _knapsack, _pattern_bound
from platform_assets.processing.planner.preprocessing import _prepare
from tests.unit.test_planner import SMALL, check_plan

UNIT = 600  # seconds per time step of the tiny instances


def _fewest_vms(tasks: list[TaskRequest], horizon: int) -> int:
    """Exact optimum by exhaustive search over VMs and start steps (a handful of tasks)."""
    cap = (SMALL.capacity.cpu, SMALL.capacity.ram_mb, SMALL.capacity.storage_gb)
    items = sorted(
        ((t.duration_s // UNIT, t.earliest_start_s // UNIT, t.cpu, t.ram_mb, t.storage_gb)
         for t in tasks),
        reverse=True,
    )  # fmt: skip
    steps = horizon // UNIT

    def feasible(k: int) -> bool:
        use = [[[0.0, 0.0, 0.0] for _ in range(steps)] for _ in range(k)]

        def place(j: int, opened: int) -> bool:
            if j == len(items):
                return True
            d, est, *q = items[j]
            for v in range(min(opened + 1, k)):
                for s in range(est, steps - d + 1):
                    cells = use[v][s : s + d]
                    if all(c[r] + q[r] <= cap[r] + 1e-9 for c in cells for r in range(3)):
                        for c in cells:
                            for r in range(3):
                                c[r] += q[r]
                        ok = place(j + 1, max(opened, v + 1))
                        for c in cells:
                            for r in range(3):
                                c[r] -= q[r]
                        if ok:
                            return True
            return False

        return place(0, 0)

    return next(k for k in range(len(items) + 1) if feasible(k))


@st.composite
def tiny_catalogues(draw: st.DrawFn) -> tuple[list[TaskRequest], Limits]:
    """1-3 routines (CPU, RAM, duration in steps), up to 6 tasks, some released late."""
    steps = draw(st.integers(2, 6))
    routines = draw(
        st.lists(
            st.tuples(
                st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0]),
                st.sampled_from([1024, 8 * 1024, 12 * 1024, 20 * 1024]),
                st.integers(1, steps),
            ),
            min_size=1,
            max_size=3,
        )
    )
    tasks = []
    for k in range(draw(st.integers(1, 6))):
        cpu, ram, d = draw(st.sampled_from(routines))
        est = draw(st.integers(0, steps - d))
        tasks.append(TaskRequest(f"t{k}", cpu, ram, 1.0, d * UNIT, earliest_start_s=est * UNIT))
    return tasks, Limits(max_vms=50, horizon_s=steps * UNIT)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_catalogues())
def test_pattern_bound_never_exceeds_the_optimum(inst: tuple[list[TaskRequest], Limits]) -> None:
    tasks, limits = inst
    optimum = _fewest_vms(tasks, limits.horizon_s)
    prob = _prepare(tasks, [_as_vec(SMALL.capacity)], [], limits)
    assert _pattern_bound(prob, _as_vec(SMALL.capacity)) <= optimum
    assert lower_bound(tasks, SMALL, limits) <= optimum
    p = plan(tasks, [SMALL], [], limits)
    check_plan(p, tasks, [SMALL], [], limits)
    assert len(p.new_vms) >= optimum


def test_pattern_bound_sees_tasks_that_cannot_share_a_vm() -> None:
    # 8-CPU, 32 GB VMs; 4 tasks of 5.5 CPU and 5 of 3.5 CPU + 18 GB, all 40 minutes in a 1-hour
    # horizon, so all run during the middle 20 minutes. No two of them fit one VM (CPU, or RAM
    # for two 3.5s): 9 VMs. Energy and big-item counting say 7: 3.5 CPU + 18 GB is under half
    # of either resource, so they count it as a fraction.
    tasks = [TaskRequest(f"a{k}", 5.5, 1024, 1.0, 2400) for k in range(4)]
    tasks += [TaskRequest(f"b{k}", 3.5, 18 * 1024, 1.0, 2400) for k in range(5)]
    limits = Limits(max_vms=50, horizon_s=3600)
    prob = _prepare(tasks, [_as_vec(SMALL.capacity)], [], limits)
    assert _pattern_bound(prob, _as_vec(SMALL.capacity)) == 9
    assert lower_bound(tasks, SMALL, limits) == 9
    assert len(plan(tasks, [SMALL], [], limits).new_vms) == 9


def test_free_form_inputs_are_left_to_the_generic_bounds() -> None:
    tasks = [TaskRequest(f"t{k}", 0.5 + k * 0.25, 1024, 1.0, 600) for k in range(20)]
    prob = _prepare(tasks, [_as_vec(SMALL.capacity)], [], Limits(50, 3600))
    assert _pattern_bound(prob, _as_vec(SMALL.capacity)) == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 3.0, allow_nan=False),
            st.sampled_from([0.5, 1.0, 2.5, 3.0, 5.0]),
            st.sampled_from([512, 4096, 9000]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_knapsack_is_exact_on_small_cases(items: list[tuple[float, float, int]]) -> None:
    values = [v for v, _, _ in items]
    sizes = [(c, float(r), 1.0) for _, c, r in items]
    cap = (8.0, 16384.0, 100.0)
    best, counts, upper = _knapsack(values, sizes, cap)
    assert all(sum(counts[s] * sizes[s][r] for s in range(len(sizes))) <= cap[r] for r in range(3))
    assert abs(sum(c * v for c, v in zip(counts, values, strict=True)) - best) < 1e-9
    assert upper >= best

    def brute(j: int, rem: list[float]) -> float:
        if j == len(sizes):
            return 0.0
        out, k = 0.0, 0
        while all(k * sizes[j][r] <= rem[r] + 1e-9 for r in range(3)):
            left = [rem[r] - k * sizes[j][r] for r in range(3)]
            out = max(out, k * values[j] + brute(j + 1, left))
            k += 1
            if k > 40:
                break
        return out

    assert abs(brute(0, list(cap)) - best) < 1e-9


@st.composite
def windowed_catalogues(draw: st.DrawFn) -> tuple[list[TaskRequest], Limits]:
    """1-4 routines, up to 40 tasks, a horizon from tight (1.2x the longest) to loose, some
    tasks released late and some in two-step chains: the shapes the pattern bound works on."""
    routines = draw(
        st.lists(
            st.tuples(
                st.sampled_from([0.5, 1.0, 2.0, 3.0, 4.5, 5.0, 6.0]),
                st.sampled_from([512, 4096, 10 * 1024, 18 * 1024]),
                st.integers(1, 12),
            ),
            min_size=1,
            max_size=4,
        )
    )
    longest = max(r[2] for r in routines)
    steps = draw(st.integers(max(longest + 1, int(1.2 * longest)), 3 * longest + 2))
    tasks: list[TaskRequest] = []
    for k in range(draw(st.integers(1, 40))):
        cpu, ram, d = draw(st.sampled_from(routines))
        pred = None
        if tasks and draw(st.integers(0, 4)) == 0:
            before = tasks[-1]
            if before.preceding is None and before.duration_s // UNIT + d <= steps:
                pred = before.key
        est = 0 if pred else draw(st.sampled_from([0, 0, draw(st.integers(0, steps - d))]))
        tasks.append(TaskRequest(f"t{k:02d}", cpu, ram, 1.0, d * UNIT, pred, False, est * UNIT))
    return tasks, Limits(max_vms=500, horizon_s=steps * UNIT)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windowed_catalogues(), st.randoms(use_true_random=False))
def test_catalogue_plans_beat_first_fit_in_any_order_and_ignore_units_and_names(
    inst: tuple[list[TaskRequest], Limits], rnd: random.Random
) -> None:
    tasks, limits = inst
    ours = plan(tasks, [SMALL], [], limits)
    check_plan(ours, tasks, [SMALL], [], limits)
    bound = lower_bound(tasks, SMALL, limits)
    assert bound <= len(ours.new_vms) or ours.unplaced
    shuffled = list(tasks)
    rnd.shuffle(shuffled)
    for order in (tasks, shuffled, tasks[::-1]):
        base = first_fit(order, SMALL, limits)
        assert (len(ours.unplaced), len(ours.new_vms)) <= (len(base.unplaced), len(base.new_vms))
    # The same catalogue in seconds instead of 10-minute steps, and under other names.
    scaled = [
        TaskRequest(
            f"job-{rnd.randrange(10**6)}-{t.key}",
            t.cpu,
            t.ram_mb,
            t.storage_gb,
            t.duration_s // 60,
            f"job-x-{t.preceding}" if t.preceding else None,
            t.same_vm_as_preceding,
            t.earliest_start_s // 60,
        )  # fmt: skip
        for t in tasks
    ]
    names = {t.key: s.key for t, s in zip(tasks, scaled, strict=True)}
    scaled = [
        TaskRequest(
            s.key,
            s.cpu,
            s.ram_mb,
            s.storage_gb,
            s.duration_s,
            names[t.preceding] if t.preceding else None,
            s.same_vm_as_preceding,
            s.earliest_start_s,
        )  # fmt: skip
        for t, s in zip(tasks, scaled, strict=True)
    ]
    rnd.shuffle(scaled)
    small_limits = Limits(limits.max_vms, limits.horizon_s // 60)
    other = plan(scaled, [SMALL], [], small_limits)
    assert (len(other.new_vms), len(other.unplaced)) == (len(ours.new_vms), len(ours.unplaced))
    assert lower_bound(scaled, SMALL, small_limits) == bound
