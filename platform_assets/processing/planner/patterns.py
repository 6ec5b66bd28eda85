"""VM patterns for routine catalogues: a configuration LP over time, solved by column generation.

With few distinct task shapes (a routine catalogue), what a VM can run at one instant is a
*pattern*: how many tasks of each shape, within its capacity. The relaxation, on sampled
instants t of the horizon (any subset keeps it valid):

    min K   s.t.  each class k (shape, duration, window) of n_k tasks picks starts: sum_g x_kg = n_k
                  running tasks of shape s at t  <=  sum_c c_s y_ct     (patterns c in use at t)
                  sum_c y_ct <= K                                       (K VMs at every instant)

A plan gives a solution with K = its VM count (tasks do not migrate, which the relaxation does
not even ask), so the LP optimum is a lower bound. Patterns are generated as needed: the
pricing problem at t is an integer knapsack over the shapes, solved exactly by branch and bound
(a few shapes only). The bound reported is not the LP solver's value but the weak-duality bound
rebuilt from its duals with exact arithmetic on our side: for any prices p_st >= 0,

    K >= sum_k n_k min_start(sum of p over the instants the task covers) / sum_t max_c(c . p_t)

(the maximum over patterns over-estimated when the knapsack is cut short), so floating-point
noise in GLOP can only weaken the bound, never make it invalid. This is the exact counterpart of
the dual-feasible transforms in ``bounds``: those fix the prices in advance, here the LP picks
the best ones. On tight horizons it counts what the energy bounds miss: tasks of 40 % and 70 %
of a VM that must overlap cannot share it, whatever their areas say. Against the generic bounds
on tuning instances: tight catalogues 136 -> 145 (1,279 tasks), 59 -> 66 (470), 3,019 -> 3,882
(10,000); an independent catalogue 57 -> 62 (1,460); chains 39 -> 42 (463). Sampled instants,
rounds and knapsack nodes (per pricing problem and in all) are capped, never by the clock.

Tried for the plan and not kept: the fill sweep of ``constructions`` holding each task back to
the start the LP gives it (classes dealt over their start ranges by largest remainder). The LP
lets tasks change VM between instants, and its starts, exact only at the sampled instants, leave
gaps: on a tuning tight catalogue (1,279 tasks, bound 145) it needed 288-357 VMs where the plain
fill needs 166-212.

ortools (GLOP) is imported inside ``_solve`` only.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

from platform_assets.processing.planner.model import Vec, _side_by_side
from platform_assets.processing.planner.preprocessing import _Problem

# More distinct demands: a free-form input, left to the generic bounds. Grouping them into
# fewer, smaller shapes (componentwise minimum, still valid) was tried: on mixed and per-task
# tight instances it stayed 15-40 % under the generic bounds and took up to a minute. Up to 16
# exact shapes covers routine catalogues and chains drawn from a few templates (a tuning mixed
# chains instance of 1,686 tasks: 128 -> 144, in 0.04 s).
_MAX_SHAPES = 16
_POINTS = 48  # sampled instants of the horizon
_ROUNDS = 20  # column-generation rounds (deterministic: no time limit)
_KNAP_NODES = 2_000  # branch-and-bound nodes per pricing problem before falling back
# All pricing problems together (~1.5 s of CPU here): 16 tiny shapes (many per VM) made every
# knapsack hit its cap, 48 instants x 20 rounds of them, ~20 s for a 132-task input; the
# rounds stop here instead, with the best bound of the rounds done.
_TOTAL_NODES = 200_000
_TOL = 1e-6  # capacity tolerance of a pattern: generous, so no real VM holds more


def _knapsack(
    values: Sequence[float],
    sizes: Sequence[Vec],
    cap: Vec,
    nodes: int = _KNAP_NODES,
    spent: list[int] | None = None,
) -> tuple[float, list[int], float]:
    """Best pattern for the prices: (value, counts, upper bound on the optimum).

    Exact when the search finishes within ``nodes``; otherwise the upper bound is the
    fractional one of the unexplored part, which only weakens the bound built from it.
    The nodes used are added to ``spent[0]`` (callers cap their total effort with it).
    """
    m = len(values)
    lim: Vec = (cap[0] * (1 + _TOL) + _TOL, cap[1] * (1 + _TOL) + _TOL, cap[2] * (1 + _TOL) + _TOL)
    order = [s for s in range(m) if values[s] > 0]

    def most(s: int, rem: Vec) -> int:
        k = math.inf
        for r in range(3):
            if sizes[s][r] > 0:
                k = min(k, rem[r] // sizes[s][r])
        return int(k) if k < math.inf else 0

    order.sort(
        key=lambda s: (-values[s] / max(max(sizes[s][r] / cap[r] for r in range(3)), 1e-12), s)
    )
    # Best value per unit of each resource over the shapes not yet decided (a suffix of the
    # order), so the fractional bound of a node costs 3 products, not a scan of the shapes.
    rates = [[0.0] * (len(order) + 1) for _ in range(3)]
    for r in range(3):
        for j in range(len(order) - 1, -1, -1):
            s_ = order[j]
            own = values[s_] / sizes[s_][r] if sizes[s_][r] > 0 else math.inf
            rates[r][j] = max(rates[r][j + 1], own)

    def frac(rem: Vec, j: int) -> float:
        best = min(
            (rates[r][j] * max(rem[r], 0.0) for r in range(3) if rates[r][j] < math.inf),
            default=math.inf,
        )
        return best if best < math.inf else 1e18  # only zero-size shapes: cannot happen here

    best_val = 0.0
    best_counts = [0] * m
    counts = [0] * m
    left = [nodes]
    cut = [0.0]

    def search(j: int, rem: Vec, val: float) -> None:
        nonlocal best_val, best_counts
        if val > best_val:
            best_val, best_counts = val, list(counts)
        if j == len(order):
            return
        ub = val + frac(rem, j)
        left[0] -= 1  # every call counts, pruned ones too: each costs a ``frac``
        if ub <= best_val + 1e-12:
            return
        if left[0] < 0:
            cut[0] = max(cut[0], ub)
            return
        s = order[j]
        for k in range(most(s, rem), -1, -1):
            counts[s] = k
            r2 = (rem[0] - k * sizes[s][0], rem[1] - k * sizes[s][1], rem[2] - k * sizes[s][2])
            search(j + 1, r2, val + k * values[s])
        counts[s] = 0

    search(0, lim, 0.0)
    if spent is not None:
        spent[0] += nodes - max(left[0], 0)
    return best_val, best_counts, max(best_val, cut[0])


def _sample_points(horizon: int, points: int) -> list[int]:
    """Instants (integer steps ``[t, t+1)``) where the LP counts running tasks."""
    if horizon <= points:
        return list(range(horizon))
    return sorted({int((j + 0.5) * horizon / points) for j in range(points)})


def _cover_groups(est: int, lct: int, d: int, pts: list[int]) -> list[tuple[int, int]]:
    """Distinct minimal ranges [lo, hi) of sampled instants a task in the window may cover."""
    last = lct - d
    cands = {est, last}
    for t in pts:
        for s in (t + 1, t - d + 1):
            if est <= s <= last:
                cands.add(s)
    ranges = {(bisect_left(pts, s), bisect_left(pts, s + d)) for s in cands}
    # A range containing another is never cheaper (prices are >= 0): keep the minimal ones.
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges, key=lambda r: (r[1] - r[0], r)):
        if not any(lo <= a and b <= hi for a, b in out):
            out.append((lo, hi))
    return sorted(out)


def _catalogue_shapes(prob: _Problem) -> tuple[list[int], list[Vec]] | None:
    """The placeable tasks that use some resource and their distinct sizes, or None when the
    input is not a catalogue (no such task, or more than _MAX_SHAPES sizes). A task that uses
    nothing fits beside anything: it cannot raise a bound (and no pattern holds it)."""
    idx = [i for i in prob.placeable() if any(prob.q[i])]
    sizes = sorted({prob.q[i] for i in idx})
    if not idx or len(sizes) > _MAX_SHAPES:
        return None
    return idx, sizes


def _alone_patterns(sizes: Sequence[Vec], cap: Vec) -> list[list[int]]:
    """One pattern per shape: that shape alone, as many as fit a VM (at least one)."""
    m = len(sizes)
    patterns = []
    for s, size in enumerate(sizes):
        alone = [0] * m
        alone[s] = max(1, _side_by_side(size, cap, _TOL))
        patterns.append(alone)
    return patterns


def _pattern_bound(prob: _Problem, cap: Vec) -> int:
    """Configuration-LP lower bound on VMs of capacity cap; 0 if the input is not a catalogue."""
    shapes = _catalogue_shapes(prob)
    if shapes is None:
        return 0
    idx, sizes = shapes
    number = {q: s for s, q in enumerate(sizes)}
    classes: dict[tuple[int, int, int, int], int] = {}
    for i in idx:
        key = (number[prob.q[i]], prob.d[i], prob.est[i], prob.lct[i])
        classes[key] = classes.get(key, 0) + 1
    pts = _sample_points(prob.horizon, _POINTS)
    groups = {k: _cover_groups(k[2], k[3], k[1], pts) for k in classes}
    return _solve(sizes, classes, groups, len(pts), cap)


def _solve(
    sizes: list[Vec],
    classes: dict[tuple[int, int, int, int], int],
    groups: dict[tuple[int, int, int, int], list[tuple[int, int]]],
    npts: int,
    cap: Vec,
) -> int:
    """Column generation on the configuration LP; the bound rebuilt from the duals."""
    from ortools.linear_solver import pywraplp  # lazily: only catalogues get here

    m = len(sizes)
    solver = pywraplp.Solver.CreateSolver("GLOP")
    inf = solver.infinity()
    k_var = solver.NumVar(0.0, inf, "K")
    cover = [[solver.Constraint(0.0, inf) for _ in range(npts)] for _ in range(m)]
    fleet = [solver.Constraint(0.0, inf) for _ in range(npts)]
    for t in range(npts):
        fleet[t].SetCoefficient(k_var, 1.0)
    for key, count in sorted(classes.items()):
        row = solver.Constraint(float(count), float(count))
        for lo, hi in groups[key]:
            x = solver.NumVar(0.0, inf, "")
            row.SetCoefficient(x, 1.0)
            for t in range(lo, hi):
                cover[key[0]][t].SetCoefficient(x, -1.0)

    def add_pattern(t: int, counts: list[int]) -> None:
        y = solver.NumVar(0.0, inf, "")
        fleet[t].SetCoefficient(y, -1.0)
        for s in range(m):
            if counts[s]:
                cover[s][t].SetCoefficient(y, float(counts[s]))

    for alone in _alone_patterns(sizes, cap):  # the LP is feasible from the start
        for t in range(npts):
            add_pattern(t, alone)
    solver.Minimize(k_var)
    best = 0.0
    spent = [0]
    seen: dict[tuple[float, ...], tuple[float, list[int], float]] = {}
    for _ in range(_ROUNDS):
        if spent[0] >= _TOTAL_NODES or solver.Solve() != pywraplp.Solver.OPTIMAL:
            break
        prices = [[max(0.0, cover[s][t].dual_value()) for t in range(npts)] for s in range(m)]
        mu = [fleet[t].dual_value() for t in range(npts)]
        new: list[tuple[int, list[int]]] = []
        denom = 0.0
        for t in range(npts):
            vals = tuple(prices[s][t] for s in range(m))
            if vals not in seen:  # instants often share their prices
                seen[vals] = _knapsack(vals, sizes, cap, spent=spent)
            val, counts, upper = seen[vals]
            denom += upper
            if val > mu[t] * (1 + 1e-7) + 1e-9:
                new.append((t, counts))
        best = max(best, _dual_bound(prices, classes, groups, denom))
        if not new:
            break
        for t, counts in new:
            add_pattern(t, counts)
    return int(math.ceil(best - 1e-6)) if best > 0 else 0


def _dual_bound(
    prices: list[list[float]],
    classes: dict[tuple[int, int, int, int], int],
    groups: dict[tuple[int, int, int, int], list[tuple[int, int]]],
    denom: float,
) -> float:
    """Weak duality with our own arithmetic: valid for any prices >= 0 (see module doc)."""
    if denom <= 0:
        return 0.0
    prefix = []
    for row in prices:
        acc = [0.0]
        for p in row:
            acc.append(acc[-1] + p)
        prefix.append(acc)
    num = 0.0
    for key, count in classes.items():
        acc = prefix[key[0]]
        num += count * min(acc[hi] - acc[lo] for lo, hi in groups[key])
    return num / denom
