"""Every lower bound is valid: never above an optimal plan, checked against exact solvers.

Tiny catalogues are solved by exhaustive search (``test_planner_patterns``), small free-form
inputs with chains and release times by CP-SAT (``benchmarks/planner_exact.py``, a model built
from the raw tasks, not the planner's). A bound that ever exceeds the optimum fails here,
whatever the benchmark says.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.planner_exact import exact_vms, feasible
from platform_assets.processing.planner import Limits, TaskRequest, lower_bound, plan
from platform_assets.processing.planner.bounds import _bound_arrays, _bound_from
from platform_assets.processing.planner.model import _as_vec
from platform_assets.processing.planner.patterns import _knapsack, _pattern_bound
from platform_assets.processing.planner.preprocessing import _prepare
from platform_assets.processing.planner.window_patterns import _window_pattern_bound
from tests.unit.test_planner import BIG, SMALL, check_plan
from tests.unit.test_planner_patterns import _fewest_vms, tiny_catalogues

UNIT = 600


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_catalogues())
def test_window_pattern_bound_never_exceeds_the_optimum(
    inst: tuple[list[TaskRequest], Limits],
) -> None:
    tasks, limits = inst
    optimum = _fewest_vms(tasks, limits.horizon_s)
    prob = _prepare(tasks, [_as_vec(SMALL.capacity)], [], limits)
    assert _window_pattern_bound(prob, _as_vec(SMALL.capacity)) <= optimum


@st.composite
def small_free_form(draw: st.DrawFn) -> tuple[list[TaskRequest], Limits]:
    """Up to 9 tasks of free-form profiles, some chained (some same-VM), some released late."""
    steps = draw(st.integers(3, 8))
    tasks: list[TaskRequest] = []
    for k in range(draw(st.integers(1, 9))):
        d = draw(st.integers(1, steps))
        chained = k > 0 and draw(st.booleans())
        prev = tasks[-1] if chained else None
        if prev is not None and (prev.earliest_start_s + prev.duration_s) // UNIT + d > steps:
            prev = None
        est = 0 if prev is not None else draw(st.integers(0, steps - d))
        tasks.append(
            TaskRequest(
                f"t{k}",
                draw(st.sampled_from([0.5, 1.0, 2.5, 3.0, 4.5, 6.0, 8.0])),
                draw(st.sampled_from([1024, 6 * 1024, 12 * 1024, 17 * 1024, 30 * 1024])),
                draw(st.sampled_from([1.0, 30.0, 55.0])),
                d * UNIT,
                preceding=prev.key if prev is not None else None,
                same_vm_as_preceding=prev is not None and draw(st.booleans()),
                earliest_start_s=est * UNIT,
            )
        )
    return tasks, Limits(max_vms=50, horizon_s=steps * UNIT)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_free_form())
def test_lower_bound_never_exceeds_the_cpsat_optimum(
    inst: tuple[list[TaskRequest], Limits],
) -> None:
    tasks, limits = inst
    p = plan(tasks, [SMALL], [], limits)
    check_plan(p, tasks, [SMALL], [], limits)
    if p.unplaced:  # a chain that cannot fit: the exact model asks for every task
        return
    optimum = exact_vms(tasks, SMALL, limits, start=len(p.new_vms))
    assert lower_bound(tasks, SMALL, limits) <= optimum <= len(p.new_vms)


def test_window_bound_sees_that_no_pattern_fills_a_vm() -> None:
    # A tuning catalogue (8 h, two routines, no releases): the tasks need 97.9 % of three VMs'
    # RAM over the horizon, but no mix of these two RAM sizes fills more than 96.5 % of a VM,
    # so three VMs cannot do. Energy and the sampled pattern LP said 3.
    tasks = [TaskRequest(f"a{k:03d}", 0.5, 4864, 26.3, 36 * 60) for k in range(270)]
    tasks += [TaskRequest(f"b{k:03d}", 2.5, 12160, 48.3, 53 * 60) for k in range(70)]
    limits = Limits(max_vms=100, horizon_s=8 * 3600)
    cap = _as_vec(BIG.capacity)
    prob = _prepare(tasks, [cap], [], limits)
    assert _bound_from(*_bound_arrays(prob), cap, prob.horizon) == 3
    assert _pattern_bound(prob, cap) == 3
    assert _window_pattern_bound(prob, cap) == 4
    assert lower_bound(tasks, BIG, limits) == 4
    assert len(plan(tasks, [BIG], [], limits).new_vms) == 4


def test_knapsack_reports_its_effort_and_respects_the_node_cap() -> None:
    # 16 tiny shapes: thousands of patterns. The node cap bounds the search; the upper bound
    # stays an upper bound, so a bound built from it stays valid.
    sizes = [(0.25 + 0.01 * s, 128.0 * (s + 1), 0.5) for s in range(16)]
    values = [1.0 + 0.1 * s for s in range(16)]
    spent = [0]
    best, counts, upper = _knapsack(values, sizes, _as_vec(BIG.capacity), nodes=300, spent=spent)
    assert 0 < spent[0] <= 300
    assert upper >= best > 0
    assert abs(sum(c * v for c, v in zip(counts, values, strict=True)) - best) < 1e-9


def test_the_fleet_wide_relaxation_ignores_which_vm_runs_a_task() -> None:
    # Three tasks of 60 % of a VM's CPU for the whole horizon: 1.8 VMs of CPU fit two VMs
    # fleet-wide, but no two of them fit one VM. The diagnosis of the planner's gap tells the
    # two apart this way (timing and energy against holding a task on one VM).
    tasks = [TaskRequest(f"t{k}", 9.6, 1024, 1.0, 3600) for k in range(3)]
    limits = Limits(max_vms=10, horizon_s=3600)
    assert feasible(tasks, BIG, limits, 2, seconds=10.0, fleet_only=True) == "FEASIBLE"
    assert feasible(tasks, BIG, limits, 2, seconds=10.0) == "INFEASIBLE"
    assert feasible(tasks, BIG, limits, 3, seconds=10.0) == "FEASIBLE"
