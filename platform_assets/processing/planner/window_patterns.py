"""Energetic configuration LP for routine catalogues: cutting stock over time windows.

For a window [a, b] every task must spend at least its minimal overlap o_i inside it (given its
window [est, lct]). At each instant a VM runs a *pattern* (how many tasks of each shape fit its
capacity), so averaged over [a, b] the K VMs run a mix of patterns whose counts cover

    D_s = sum over tasks of shape s of o_i / (b - a)        (mean number running per instant)

hence K >= the fractional cutting-stock optimum for demands D, and by weak duality, for any
prices p >= 0:  K >= p . D / max over patterns c of p . c.  The prices come from column
generation (GLOP) on a few windows; the bound itself is rebuilt with our own arithmetic (the
knapsack's upper bound in the denominator), so LP noise can only weaken it, and each price
vector is then tried on every window.

Why beside ``patterns``: that LP counts running tasks at 48 sampled instants, and a task may
dodge a sample; averaging over windows loses nothing to sampling. A tuning catalogue (340 tasks
of two routines, 8 h, no releases) needs 97.9 % of 3 VMs' RAM over the horizon while no pattern
fills more than 96.5 % of one: both earlier bounds said 3, the plan and this bound say 4.
"""

from __future__ import annotations

import math

import numpy as np

from platform_assets.processing.planner.model import Vec
from platform_assets.processing.planner.patterns import (
    _alone_patterns,
    _catalogue_shapes,
    _knapsack,
)
from platform_assets.processing.planner.preprocessing import _Problem

_POINTS = 48  # window ends sampled among the breakpoints (as in ``bounds``)
_LP_WINDOWS = 8  # windows on which the LP itself is solved (the rest reuse their prices)
_ROUNDS = 30  # column-generation rounds per window
_TOTAL_NODES = 30_000  # knapsack nodes over all windows and rounds (see ``patterns``)


def _window_pattern_bound(prob: _Problem, cap: Vec) -> int:
    """Lower bound on VMs of capacity cap; 0 if the input is not a catalogue."""
    shapes = _catalogue_shapes(prob)
    if shapes is None:
        return 0
    idx, sizes = shapes
    demand = _window_demands(prob, idx, sizes)  # (windows, shapes)
    if demand.size == 0:
        return 0
    capv = np.array(cap, dtype=float)
    frac = np.array(sizes, dtype=float) / np.where(capv > 0, capv, 1.0)  # (shapes, 3)
    energy = (demand @ frac).max(axis=1)  # plain energy per window: where to solve the LP
    order = np.lexsort((np.arange(energy.size), -energy))
    best = 0.0
    tried: list[tuple[float, ...]] = []
    spent = [0]
    for w in order[:_LP_WINDOWS].tolist():
        if spent[0] >= _TOTAL_NODES:
            break
        prices = _cutting_stock_prices(demand[w].tolist(), sizes, cap, spent)
        if prices is None or prices in tried:
            continue
        tried.append(prices)
        _, _, upper = _knapsack(list(prices), sizes, cap, spent=spent)
        if upper > 0:
            best = max(best, float((demand @ np.array(prices)).max()) / upper)
    return int(math.ceil(best - 1e-6)) if best > 0 else 0


def _window_demands(prob: _Problem, idx: list[int], sizes: list[Vec]) -> np.ndarray:
    """D_s per sampled window: mean number of shape-s tasks that must run inside it."""
    number = {q: s for s, q in enumerate(sizes)}
    d = np.array([prob.d[i] for i in idx], dtype=np.int64)
    est = np.array([prob.est[i] for i in idx], dtype=np.int64)
    lct = np.array([prob.lct[i] for i in idx], dtype=np.int64)
    shape = np.array([number[prob.q[i]] for i in idx], dtype=np.int64)
    points = np.unique(np.concatenate(([0, prob.horizon], est, lct, est + d, lct - d)))
    if points.size > _POINTS:
        points = points[np.unique(np.linspace(0, points.size - 1, _POINTS).round().astype(int))]
    a_idx, b_idx = np.triu_indices(points.size, k=1)
    lo, hi = points[a_idx].astype(float), points[b_idx].astype(float)
    classes, inverse, counts = np.unique(
        np.stack((shape, d, est, lct), axis=1), axis=0, return_inverse=True, return_counts=True
    )
    del inverse
    onehot = np.zeros((classes.shape[0], len(sizes)))
    onehot[np.arange(classes.shape[0]), classes[:, 0]] = counts
    dd, e, lc = (classes[:, c].astype(float) for c in (1, 2, 3))
    out = np.zeros((lo.size, len(sizes)))
    for s0 in range(0, lo.size, 256):
        a = lo[s0 : s0 + 256, None]
        b = hi[s0 : s0 + 256, None]
        overlap = np.minimum(np.minimum(b - a, dd[None, :]), np.minimum(e + dd - a, b - lc + dd))
        np.maximum(overlap, 0.0, out=overlap)
        out[s0 : s0 + 256] = (overlap / (b - a)) @ onehot
    return out


def _cutting_stock_prices(
    demand: list[float], sizes: list[Vec], cap: Vec, spent: list[int]
) -> tuple[float, ...] | None:
    """Dual prices of min sum(y) s.t. patterns cover ``demand``, by column generation."""
    from ortools.linear_solver import pywraplp  # lazily: only catalogues get here

    m = len(sizes)
    if not any(x > 0 for x in demand):
        return None
    solver = pywraplp.Solver.CreateSolver("GLOP")
    inf = solver.infinity()
    rows = [solver.Constraint(float(demand[s]), inf) for s in range(m)]
    objective = solver.Objective()

    def add(counts: list[int]) -> None:
        y = solver.NumVar(0.0, inf, "")
        objective.SetCoefficient(y, 1.0)
        for s in range(m):
            if counts[s]:
                rows[s].SetCoefficient(y, float(counts[s]))

    for alone in _alone_patterns(sizes, cap):  # feasible from the start
        add(alone)
    objective.SetMinimization()
    prices: tuple[float, ...] | None = None
    for _ in range(_ROUNDS):
        if solver.Solve() != pywraplp.Solver.OPTIMAL:
            break
        prices = tuple(max(0.0, rows[s].dual_value()) for s in range(m))
        val, counts, _ = _knapsack(list(prices), sizes, cap, spent=spent)
        if val <= 1.0 + 1e-7 or spent[0] >= _TOTAL_NODES:
            break
        add(counts)
    return prices
