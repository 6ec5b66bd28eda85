"""The public entry points: the portfolio (step 3) with improvement and CP-SAT, first fit, bound.

3. Portfolio: orders by area (dominant resource x duration), a fixed pseudo-random mix (a key
   hash), slack, duration and dominant demand, crossed with the constructions, then key
   order; the best plan is kept. For a routine catalogue the mix goes first with "edge" too:
   sorted orders put identical tasks in long runs, which pack badly side by side. Effort is
   capped by a deterministic work counter (filter cells, scanned segments, sweep steps), never
   by the clock: small inputs run everything, 10,000 tasks a few runs (2-3.5 s on the shared
   2-core benchmark machine, 4-6 s on a slower day).

   Improvement (step 4) then runs on the three best constructions, not only the best, each
   with a third of the budget left: from another start it empties VMs the best one cannot
   (72 tuning instances of six families, 100-1,000 tasks: 8 one or two VMs fewer, none more,
   mean VMs / bound 1.0957 -> 1.0903; two starts gave 1.0921, five 1.0894 but two instances a
   VM more, each start having less budget). Up to 2,000 tasks only: at 10,000 a third of the
   budget left too little (a tuning per-task instance: same count, 7.3-8.6 -> 10 s CPU).

   When the VM limit leaves tasks out, two more constructions take the tasks smallest first,
   which places the most of them: right after the floor, the sweep whatever the budget like the
   floor, and reaching the bound no longer ends the search (it counts VMs, not tasks left out).
   On 2,000 fuzzed inputs (demands up to a whole VM, chains, releases, 0-5 VMs allowed), plans
   leaving more tasks out than first fit in the caller's order: 45 (up to 10 more) -> 6 (1-2
   more). A tuning 10,000-task per-task instance allowed half its VMs places 6,546 tasks instead
   of 4,760 (4-5 s CPU); a 10,000-task catalogue allowed half, the same count in 7 s.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from platform_assets.processing.planner.bounds import _lower_bound
from platform_assets.processing.planner.constructions import (
    _SMALLEST_FIRST,
    _component_orders,
    _congestion,
    _lanes,
    _unit_key,
)
from platform_assets.processing.planner.exact import _cpsat_fewer, _cpsat_worth_it, _rebuild
from platform_assets.processing.planner.improvement import _Schedule
from platform_assets.processing.planner.model import (
    _REL_EPS,
    ExistingVm,
    Flavour,
    Limits,
    Plan,
    TaskRequest,
    Vec,
    _as_vec,
    _side_by_side,
)
from platform_assets.processing.planner.patterns import _MAX_SHAPES
from platform_assets.processing.planner.preprocessing import _prepare, _Problem

# Deterministic effort cap in units of Fleet.work (about 0.1 us each here): more orders and
# improvement while it lasts, so small inputs get the whole portfolio and 10k tasks stay fast.
_WORK_BUDGET = 20_000_000
# Improvement (step 4) runs on this many of the best constructions, each with an equal share of
# the budget left, and the best result is kept (see the module doc); larger inputs improve only
# the best, whose share of the budget would otherwise be too small.
_IMPROVE_TOP = 3
_IMPROVE_TOP_MAX_TASKS = 2_000
_LANES_PER_VM = (1, 2, 3, 4)  # lanes a VM runs side by side in the "lanes" constructions
# A routine catalogue instead gets the lane counts its routines imply (``_lane_widths``): the
# most task-time first, this many, up to this many lanes per VM.
_CATALOGUE_WIDTHS = 4
_MAX_LANES_PER_VM = 32


def plan(
    tasks: Sequence[TaskRequest],
    flavours: Sequence[Flavour],
    existing_vms: Sequence[ExistingVm],
    limits: Limits,
) -> Plan:
    """Place every task or say why not, using as few new VMs as the search finds."""
    flavour_caps = [_as_vec(f.capacity) for f in flavours]
    prob = _prepare(tasks, flavour_caps, existing_vms, limits)
    n = len(prob.placeable())
    simple = not existing_vms and len(flavours) == 1
    target = 0
    if simple and n:
        target = _lower_bound(prob, flavour_caps[0])
    orders = _component_orders(prob)
    # (order, mode) in decreasing usefulness over the benchmark families; the budget decides
    # how many run: "edge" wins on tight horizons, "fill" on independent tasks. First, whatever
    # the budget, the floor: first fit in a fixed pseudo-random order (the "mix"), which
    # interleaves routines as a caller's order does (the canonical order groups them).
    floor = (1, "plain")
    runs = [floor, (0, "edge"), (0, "fill"), (2, "edge"), (0, "plain"), (2, "fill")]
    runs += [(3, "edge"), (3, "plain"), (1, "fill"), (4, "plain"), (4, "fill"), (1, "edge")]
    if _is_catalogue(prob):
        # Identical tasks in a sorted order come in long runs of one routine, which pack badly
        # side by side: interleaved ("mix") with "edge" goes second (10,000-task tight
        # catalogue: 613 VMs where first fit in the caller's order needs 628, area order 927).
        runs.remove((1, "edge"))
        runs.insert(1, (1, "edge"))
    lanes: dict[int, list[list[int]]] = {}

    def lanes_for(m: int) -> list[list[int]]:
        """Lanes for m tasks at a time, packed when first asked for, [] if they do not apply."""
        if m not in lanes:
            found = _lanes(prob, flavour_caps[0], m) if simple and n else []
            lanes[m] = found if -(-len(found) // m) <= limits.max_vms else []
        return lanes[m]

    # When the VM limit leaves tasks out, the orders above put large tasks first and fill the
    # allowed VMs with few of them; smallest first places the most (found by fuzzing: one VM for
    # 60 s, 30 tasks of 59 s or 2 s that cannot overlap: 1 placed where 11 fit). Right after
    # the floor and only if it left tasks out; the sweep whatever the budget, like the floor.
    after_floor = runs.index(floor) + 1
    runs[after_floor:after_floor] = [(_SMALLEST_FIRST, "fill"), (_SMALLEST_FIRST, "plain")]
    if lanes_for(1):
        runs.insert(0, (0, "lanes1"))
    if simple and n:
        # Lanes shared by several tasks at a time come last: they win on some catalogues and
        # tight horizons (see ``_lanes``); large inputs spend the budget on the runs above first.
        widths = _lane_widths(prob, flavour_caps[0]) if _is_catalogue(prob) else _LANES_PER_VM[1:]
        runs += [(rule, f"lanes{m}") for m in widths for rule in (1, 0)]
    congestion = _congestion(prob)
    unit_key = _unit_key(prob)
    best: _Schedule | None = None
    built: list[_Schedule] = []  # every construction, when improvement has several starts
    starts = _IMPROVE_TOP if n <= _IMPROVE_TOP_MAX_TASKS else 1
    spent = 0
    floor_done = False
    for rule, mode in runs:
        capped = best is not None and best.score()[0] > len(prob.reasons)
        if rule == _SMALLEST_FIRST and not capped:
            continue  # every placeable task is placed: no VM limit binds
        # At the bound there is nothing left to gain, unless the VM limit leaves tasks out.
        at_bound = best is not None and not capped and best.score()[1] <= target
        done = best is not None and (spent >= _WORK_BUDGET or at_bound)
        must = (rule, mode) == (_SMALLEST_FIRST, "fill") and len(flavours) == 1
        if floor_done and done and not must:
            break
        floor_done = floor_done or (rule, mode) == floor
        if mode == "fill" and len(flavours) != 1:
            continue
        per_vm = int(mode.removeprefix("lanes")) if mode.startswith("lanes") else 0
        if per_vm and not lanes_for(per_vm):
            continue
        sched = _Schedule(prob, flavours, existing_vms, limits)
        sched.congestion = congestion if mode == "edge" else None
        order = orders[rule]
        if per_vm:
            sched.construct_lanes(lanes_for(per_vm), order, per_vm)
        elif mode == "fill":
            sched.construct_fill(order)
        else:
            sched.construct(order)
        spent += sched.fleet.work
        if starts > 1:
            built.append(sched)
        if best is None or sched.score() < best.score():
            best = sched
    assert best is not None
    if best.score()[1] > target:
        left = max(_WORK_BUDGET - spent, _WORK_BUDGET // 10)
        top = sorted(built, key=_Schedule.score)[:starts] or [best]  # stable: first of equals
        for sched in top:
            if best.score()[1] <= target:
                break
            sched.improve(left // len(top), target, unit_key)
            if sched.score() < best.score():
                best = sched
    if simple and len(best.reasons) == len(prob.reasons):
        vms = best.score()[1]
        while vms > target and _cpsat_worth_it(n, vms - 1):
            spots = _cpsat_fewer(best, flavours[0], vms - 1)
            rebuilt = _rebuild(prob, flavours[0], limits, spots, vms - 1) if spots else None
            if rebuilt is None:
                break
            best, vms = rebuilt, rebuilt.score()[1]
    return best.to_plan()


def _is_catalogue(prob: _Problem) -> bool:
    """A routine catalogue: few distinct demands (as the pattern bound takes them)."""
    return len({prob.q[i] for i in prob.placeable()}) <= _MAX_SHAPES


def _lane_widths(prob: _Problem, cap: Vec) -> list[int]:
    """Lanes per VM for a catalogue: m = how many of a task fit side by side, by task-time.

    A task of which m fit side by side (m + 1 do not) belongs in m lanes per VM. The fixed
    counts 2-4 miss a main routine of 1/9 to 1/5 of a VM (a tuning catalogue whose main
    routine takes 11-12 % of a VM's storage, 475 tasks, 58 % released late: 5 -> 4 VMs, the
    bound, with 8 lanes; on 160 tuning catalogues no other plan changed).
    """
    task_time: dict[int, int] = {}
    for i in prob.placeable():
        fit = _side_by_side(prob.q[i], cap, _REL_EPS)
        if 2 <= fit <= _MAX_LANES_PER_VM:
            task_time[fit] = task_time.get(fit, 0) + prob.d[i]
    return sorted(task_time, key=lambda m: (-task_time[m], m))[:_CATALOGUE_WIDTHS]


def first_fit(tasks: Sequence[TaskRequest], flavour: Flavour, limits: Limits) -> Plan:
    """Baseline: input order, earliest start on the first VM where a task fits, else a new VM.

    Shares the preprocessing (reasons, chain windows) with ``plan`` and, like it, places a
    same-VM chain as one unit when its first task's turn comes, so both place the same tasks.
    """
    prob = _prepare(tasks, [_as_vec(flavour.capacity)], [], limits)
    position = {t.key: n for n, t in enumerate(tasks)}
    sched = _Schedule(prob, [flavour], [], limits)
    roots = {r for units in prob.comps for r in units}
    ready = [(position[prob.keys[r]], r) for units in prob.comps for r in units[:1]]
    heapq.heapify(ready)
    while ready:
        _, root = heapq.heappop(ready)
        if root not in sched.reasons:
            reason = sched.place_unit(root)
            if reason is not None:
                sched.drop(root, reason)
        for i in prob.members[root]:
            for s in prob.succs[i]:
                if s in roots:
                    heapq.heappush(ready, (position[prob.keys[s]], s))
    return sched.to_plan()


def lower_bound(tasks: Sequence[TaskRequest], flavour: Flavour, limits: Limits) -> int:
    """A number of VMs of ``flavour`` no plan can beat while placing every placeable task."""
    prob = _prepare(tasks, [_as_vec(flavour.capacity)], [], limits)
    return _lower_bound(prob, _as_vec(flavour.capacity))
