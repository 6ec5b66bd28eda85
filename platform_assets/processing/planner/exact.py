"""CP-SAT refinement for small instances (step 5).

5. CP-SAT where it pays: one flavour, no existing VM, <= 100 tasks, heuristic above the lower
   bound. It asks for a plan with one VM fewer (optional intervals per VM, per-VM and fleet-wide
   cumulatives, VM symmetry broken), with one worker, a fixed seed and deterministic limits
   (0.5 deterministic seconds, 2,000 conflicts), so the same input gives the same answer. On 64
   seeded 15-100-task instances it saved 4 VMs of 171 at up to ~3 s per plan; larger limits
   saved a few more but took up to 30 s per plan, and beyond 100 tasks it found nothing in
   seconds on fleets of 7 VMs or more. On fleets of a few VMs (tasks x VMs <= 1,500) it still
   pays where one VM is 15-30 % of the count: a tuning 163-task chains instance 5 -> 4 (the
   bound). There the limit is CP-SAT's deterministic time alone, 0.06 s (a deterministic
   second cost 15-70 s of CPU on such models, so a try takes 1-4 s); the former cap of
   300,000 / cells conflicts stopped searches a few hundred conflicts short (84 tuning
   instances of the mixed and per-task families: a 104-task chains instance 7 -> 6 VMs at
   2,607 conflicts, a 198-task one 6 -> 5, a 117-task tight one 11 -> 10, none larger, CPU
   +9-14 %, slowest plan unchanged). 0.15 s, or models up to 3,000 cells, found nothing more.


ortools is imported inside ``_cpsat_fewer`` only: importing the planner stays cheap.
"""

from __future__ import annotations

import math
from typing import Any

from platform_assets.processing.planner.improvement import _Schedule
from platform_assets.processing.planner.model import Flavour, Limits, _as_vec
from platform_assets.processing.planner.preprocessing import _Problem

_CPSAT_MAX_TASKS = 100
_CPSAT_DETERMINISTIC_TIME = 0.5
_CPSAT_MAX_CONFLICTS = 2_000
# Beyond 100 tasks, while the model stays small (tasks x VMs asked for), a try is limited by
# deterministic time only. Conflicts are no measure of cost there: 20-170 branches each, and
# 100-4,000 conflicts per CPU second between instances of the same size.
_CPSAT_MAX_CELLS = 1_500
_CPSAT_LARGE_DETERMINISTIC_TIME = 0.06


def _cpsat_worth_it(tasks: int, vms: int) -> bool:
    """Whether to ask CP-SAT for a plan on ``vms`` VMs (see the module doc)."""
    return tasks <= _CPSAT_MAX_TASKS or tasks * vms <= _CPSAT_MAX_CELLS


def _cpsat_fewer(sched: _Schedule, flavour: Flavour, vms: int) -> dict[int, tuple[int, int]] | None:
    """Try to fit the placed tasks on ``vms`` new VMs of one flavour; None if not found in budget."""
    from ortools.sat.python import cp_model  # imported lazily: only small inputs get here

    prob = sched.prob
    tasks = [i for i, w in enumerate(sched.where) if w is not None]
    cap = _as_vec(flavour.capacity)
    scale = (1000.0, 1.0, 1000.0)  # millicores, MB, MB: demands rounded up, capacity down
    cap_i = [int(math.floor(cap[r] * scale[r] + 1e-6)) for r in range(3)]
    dem = {i: [int(math.ceil(prob.q[i][r] * scale[r] - 1e-6)) for r in range(3)] for i in tasks}
    model = cp_model.CpModel()
    start, end, on = {}, {}, {}
    for i in tasks:
        start[i] = model.new_int_var(prob.est[i], prob.lct[i] - prob.d[i], f"s{i}")
        end[i] = model.new_int_var(prob.est[i] + prob.d[i], prob.lct[i], f"e{i}")
    intervals: list[list[tuple[Any, int]]] = [[] for _ in range(vms)]
    for i in tasks:
        lits = []
        for v in range(vms):
            lit = model.new_bool_var(f"x{i}_{v}")
            on[i, v] = lit
            lits.append(lit)
            iv = model.new_optional_interval_var(start[i], prob.d[i], end[i], lit, f"i{i}_{v}")
            intervals[v].append((iv, i))
        model.add_exactly_one(lits)
    for i in tasks:
        p = prob.pred[i]
        if p >= 0:
            model.add(start[i] >= end[p])
            if prob.same_vm[i]:
                for v in range(vms):
                    model.add(on[i, v] == on[p, v])
    # Redundant: all VMs together, which propagates far better than the per-VM ones alone.
    whole = [model.new_interval_var(start[i], prob.d[i], end[i], f"w{i}") for i in tasks]
    for r in range(3):
        model.add_cumulative(whole, [dem[i][r] for i in tasks], cap_i[r] * vms)
    for v in range(vms):
        for r in range(3):
            model.add_cumulative(
                [iv for iv, _ in intervals[v]], [dem[i][r] for _, i in intervals[v]], cap_i[r]
            )
    # Identical VMs: the j-th task (by size) may only use the first j+1 VMs.
    ref = prob.ref_cap
    ranked = sorted(
        tasks, key=lambda i: (-max(prob.q[i][r] / ref[r] for r in range(3)) * prob.d[i], i)
    )
    for j, i in enumerate(ranked[: vms - 1]):
        for v in range(j + 1, vms):
            model.add(on[i, v] == 0)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    if len(tasks) <= _CPSAT_MAX_TASKS:
        solver.parameters.max_deterministic_time = _CPSAT_DETERMINISTIC_TIME
        solver.parameters.max_number_of_conflicts = _CPSAT_MAX_CONFLICTS
    else:
        solver.parameters.max_deterministic_time = _CPSAT_LARGE_DETERMINISTIC_TIME
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    out = {}
    for i in tasks:
        v = next(v for v in range(vms) if solver.boolean_value(on[i, v]))
        out[i] = (v, int(solver.value(start[i])))
    return out


def _rebuild(
    prob: _Problem, flavour: Flavour, limits: Limits, spots: dict[int, tuple[int, int]], vms: int
) -> _Schedule | None:
    """A schedule from a CP-SAT answer, re-checked exactly with float capacities."""
    sched = _Schedule(prob, [flavour], [], limits)
    for _ in range(vms):
        sched.fleet.add_vm("new", flavour, _as_vec(flavour.capacity))
    for i in sorted(spots, key=lambda i: (spots[i][1], i)):
        v, st = spots[i]
        if sched.fleet.earliest(v, prob.q[i], prob.d[i], st, st + prob.d[i]) != st:
            return None
        sched.put(i, v, st)
    for v in range(vms):
        if not sched.fleet.tasks_on[v]:
            sched.fleet.kill(v)
    return sched
