"""Lower bound on the number of VMs (``lower_bound``).

Lower bound (``lower_bound``), the max of:
(a) energy on the whole horizon per resource, also after dual-feasible transforms of the demand
    fractions (Fekete & Schepers): the identity gives the plain area bound ceil(sum(r x d) /
    (capacity x horizon)); the "big item" transforms count tasks that cannot share a VM, and
    floor((k + 1) x) / k for k up to 11 how many fit (a tuning chains catalogue of 11-minute
    tasks in 65-minute lanes: 23 -> 26, the plan's count, with k <= 4 it saw 5.9 per lane);
    the time share d / horizon also goes through floor((k + 1) x) / k with k = floor(horizon /
    d) for every duration, up to k = 1,000: a lane holds whole tasks (a tuning catalogue of
    27-minute tasks that cannot share a VM, 17 to an 8-hour lane: 16 -> 17, the optimum;
    a tuning chains catalogue 31 -> 32);
(b) energetic reasoning on windows [a, b] between sampled window ends, with each task's minimal
    overlap o given its chain window (where chains and tight horizons make (a) weak), and
    "time lanes": the same transforms applied to the share o / (b - a) as well;
(c) the load forced at one instant by tasks whose window is shorter than twice their duration.
(d) for routine catalogues (at most 16 distinct demands), the configuration LP of ``patterns``
    (sampled instants) and its energetic form over time windows in ``window_patterns`` (no
    sampling loss: a tuning 340-task catalogue whose best pattern fills 96.5 % of a VM, 3 -> 4).
All are valid for any plan that places every placeable task. Time lanes, for one resource of one
VM, demand fractions h (after a transform g, still at most 1 at every instant) and a transform f
of the share: give each task, in order of start, a part of measure g(h) of [0, 1) left free by
the tasks running at that moment. Each point of [0, 1) is then held by tasks that never overlap
in time, whose pieces inside [a, b] are at least o long and sum to at most b - a; f is
dual-feasible and non-decreasing, so their f(o / (b - a)) sum to at most 1, and integrating over
[0, 1) gives sum g(h) f(o / (b - a)) <= 1 per VM. It counts what area misses: a 70-minute task
in a 2-hour window leaves room beside it in time only for tasks of 50 minutes or less.

Against the plain area bound, on the 10,000-task benchmark instances: bimodal 343 -> 513 (big
tasks cannot share), tight 683 -> 743 (windows, then time lanes: 737 without them; 1,000 tasks
77 -> 78) and chains 66 -> 70 (windows). The remaining gap on tight horizons (~10-14 %) and
chains (~8-14 %) is part heuristic, part bound: given 60-90 s, CP-SAT neither found a plan at
the bound nor proved it impossible on the 100-task tight or a 300-task chains instance (nor, in
60 deterministic seconds, 7 VMs for the 1,000-task chains instance). Energetic reasoning alone
is saturated: all window ends instead of 48 samples change nothing, and the fleet-wide
relaxation (one cumulative of k VMs' capacity, non-preemptive) is feasible at the bound on both
(CP-SAT, < 1 s). Chained tasks' overlaps taken jointly (a chain cannot be left-shifted before a
window and right-shifted after it at once) change nothing on chains or tight either.

"""

from __future__ import annotations

import math

import numpy as np

from platform_assets.processing.planner.model import Vec
from platform_assets.processing.planner.preprocessing import _Problem

# Parameters k of the transforms floor((k + 1) x) / k: with k up to 7 a lane of 65 minutes counts
# 11-minute tasks as 1/5 of it each (five fit, not 5.9), which the area cannot see.
_DFF_KS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
_MAX_LANE_K = 1_000  # largest k of the whole-horizon lane transforms (``_lane_transforms``)


def _dff_family(x: np.ndarray) -> list[np.ndarray]:
    """Dual-feasible transforms of demand fractions x (each keeps 'fits in one VM' valid).

    Boundary cases are rounded towards the smaller value so float noise cannot inflate the bound.
    """
    tol = 1e-9
    out = [x]
    out.extend(_floor_transform(x, k) for k in _DFF_KS)
    for eps in (0.1, 0.2, 0.3, 0.4, 0.5):
        f = np.where(x > 1 - eps + tol, 1.0, x)
        out.append(np.where(x < eps + tol, 0.0, f))
    return out


def _floor_transform(x: np.ndarray, k: int | np.ndarray) -> np.ndarray:
    """floor((k + 1) x) / k, with x kept where (k + 1) x is within float noise of an integer.

    Rounding those boundary cases down to x means float noise cannot inflate the bound; k may
    be an array that broadcasts against x.
    """
    y = (k + 1) * x
    near_int = np.abs(y - np.round(y)) < 1e-9
    return np.where(near_int, x, np.floor(y + 1e-9) / k)


def _lane_transforms(durations: np.ndarray, horizon: int) -> np.ndarray:
    """Time shares d / horizon through floor((k + 1) x) / k for the k that ``_dff_family`` lacks.

    A lane of the horizon holds floor(horizon / d) tasks of duration d, which the transform with
    k = floor(horizon / d) counts exactly; ``_DFF_KS`` stops at 11, while 5-minute to 2-hour
    tasks in 8 hours need k up to 96 (a tuning catalogue: 279 tasks of 27 minutes that cannot
    share a VM, 17 to a lane, need 17 VMs where 16 lanes' worth of time suffices: 16 -> 17).
    Rows are the extra k, columns the durations.
    """
    ks = np.unique(horizon // durations[durations > 0])
    ks = ks[(ks > max(_DFF_KS)) & (ks <= _MAX_LANE_K)]
    return _floor_transform(durations[None, :] / horizon, ks[:, None])


def _bound_from(
    q: np.ndarray, d: np.ndarray, est: np.ndarray, lct: np.ndarray, cap: Vec, horizon: int
) -> int:
    """Lower bound on VMs of capacity cap for tasks with windows [est, lct] (see module doc)."""
    n = q.shape[0]
    if n == 0:
        return 0
    capv = np.array(cap, dtype=float)
    x = np.divide(q, capv, out=np.zeros_like(q), where=capv > 0)
    fx = np.concatenate(_dff_family(x), axis=1)  # (n, 3 * F)
    best = 1.0
    # (a) whole horizon
    best = max(best, float((fx * d[:, None]).sum(axis=0).max()) / horizon)
    # (b) energetic windows on sampled breakpoints
    points = np.unique(np.concatenate(([0, horizon], est, lct, est + d, lct - d)))
    if points.size > 48:
        points = points[np.unique(np.linspace(0, points.size - 1, 48).round().astype(int))]
    a_idx, b_idx = np.triu_indices(points.size, k=1)
    lo_w, hi_w = points[a_idx].astype(float), points[b_idx].astype(float)
    # A task's overlap depends only on (d, est, lct), and the sums below are linear in fx: add
    # up fx per distinct window first (routine catalogues have a handful of them, not 10,000).
    windows, inverse = np.unique(np.stack((d, est, lct), axis=1), axis=0, return_inverse=True)
    fx_w = np.zeros((windows.shape[0], fx.shape[1]))
    np.add.at(fx_w, inverse.reshape(-1), fx)
    # (a) again, as lanes of floor(horizon / d) whole tasks (see _lane_transforms)
    lanes = _lane_transforms(windows[:, 0], horizon)
    if lanes.size:
        best = max(best, float((lanes @ fx_w).max()))
    dd, e, lc = (windows[:, c].astype(float) for c in range(3))
    for start in range(0, lo_w.size, 64):
        a = lo_w[start : start + 64, None]
        b = hi_w[start : start + 64, None]
        overlap = np.minimum(np.minimum(b - a, dd[None, :]), np.minimum(e + dd - a, b - lc + dd))
        np.maximum(overlap, 0.0, out=overlap)
        # The share of the window each task must spend in it, through the same transforms
        # (the identity gives plain energy): see "time lanes" in the module docstring.
        for share in _dff_family(overlap / (b - a)):
            best = max(best, float((share @ fx_w).max()))  # (W, windows) @ (windows, 3F)
    # (c) load forced at an instant by windows shorter than twice the duration
    forced_lo, forced_hi = lct - d, est + d
    mask = forced_lo < forced_hi
    if mask.any():
        times = np.concatenate((forced_lo[mask], forced_hi[mask]))
        delta = np.concatenate((fx[mask], -fx[mask]))
        order = np.lexsort((np.concatenate((np.ones(mask.sum()), np.zeros(mask.sum()))), times))
        running = np.cumsum(delta[order], axis=0)
        best = max(best, float(running.max()))
    return int(math.ceil(best - 1e-9))


def _lower_bound(prob: _Problem, cap: Vec) -> int:
    """The best of the generic bounds and, for routine catalogues, the pattern LP (``patterns``)."""
    from platform_assets.processing.planner.patterns import _pattern_bound
    from platform_assets.processing.planner.window_patterns import _window_pattern_bound

    generic = _bound_from(*_bound_arrays(prob), cap, prob.horizon)
    return max(generic, _pattern_bound(prob, cap), _window_pattern_bound(prob, cap))


def _bound_arrays(prob: _Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    idx = prob.placeable()
    q = np.array([prob.q[i] for i in idx], dtype=float).reshape(-1, 3)
    d = np.array([prob.d[i] for i in idx], dtype=np.int64)
    est = np.array([prob.est[i] for i in idx], dtype=np.int64)
    lct = np.array([prob.lct[i] for i in idx], dtype=np.int64)
    return q, d, est, lct
