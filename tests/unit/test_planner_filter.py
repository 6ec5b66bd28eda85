"""The speed-ups of the planner must not change what it computes.

``_Fleet.candidates`` discards VMs on a coarse summary before its bucket filter, and the lower
bound adds demands per distinct window before its windowed sums; both are compared here with a
direct implementation of the same definition on random fleets and task sets.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_assets.processing.planner.bounds import _bound_from, _dff_family
from platform_assets.processing.planner.profiles import _Fleet

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CAP = (16.0, 65536.0, 400.0)


def _direct_candidates(
    fleet: _Fleet, q: tuple[float, float, float], d: int, s: int, deadline: int
) -> list[tuple[int, int]]:
    """Every alive VM with a run of ceil(d / width) unblocked buckets in range, and its hint."""
    w = fleet.width
    a, b = s // w, min(fleet.nb, -(-deadline // w))
    k = max(1, -(-d // w))
    out = []
    for v in range(len(fleet.names)):
        if not fleet.alive[v] or s + d > deadline:
            continue
        lim = fleet.limits[v]
        free = [all(fleet._lo[r, v, x] <= lim[r] - q[r] for r in range(3)) for x in range(a, b)]
        runs = [j for j in range(len(free) - k + 1) if all(free[j : j + k])]
        if runs:
            out.append((v, max(s, (a + runs[0]) * w)))
    return out


@st.composite
def fleets(draw: st.DrawFn) -> tuple[_Fleet, list[tuple[tuple[float, float, float], int, int]]]:
    horizon = draw(st.integers(20, 3000))
    fleet = _Fleet(horizon)
    for v in range(draw(st.integers(1, 12))):
        fleet.add_vm(f"vm{v}", None, CAP)
        for _ in range(draw(st.integers(0, 8))):
            s = draw(st.integers(0, horizon - 1))
            e = draw(st.integers(s + 1, horizon))
            share = draw(st.floats(0.05, 0.6))
            fleet.load(v, s, e, (CAP[0] * share, CAP[1] * share / 2, CAP[2] * share / 3))
        if draw(st.booleans()) and v:
            fleet.kill(v)
    probes = []
    for _ in range(5):
        d = draw(st.integers(1, horizon))
        s = draw(st.integers(0, horizon - d))
        deadline = draw(st.integers(s + d, horizon))
        share = draw(st.floats(0.01, 0.9))
        probes.append(((CAP[0] * share, CAP[1] * share, CAP[2] * share / 2), d, s, deadline))
    return fleet, probes  # type: ignore[return-value]


@PROPS
@given(fleets())
def test_candidates_equal_the_direct_filter(case: tuple[_Fleet, list]) -> None:
    fleet, probes = case
    for q, d, s, deadline in probes:
        assert list(fleet.candidates(q, d, s, deadline)) == _direct_candidates(
            fleet, q, d, s, deadline
        )


def _direct_bound(q: np.ndarray, d: np.ndarray, est: np.ndarray, lct: np.ndarray) -> float:
    """Part (b) of the bound, task by task (no grouping by window)."""
    capv = np.array(CAP)
    fx = np.concatenate(_dff_family(q / capv), axis=1)
    horizon = int(lct.max())
    points = np.unique(np.concatenate(([0, horizon], est, lct, est + d, lct - d)))
    best = 0.0
    for ai in range(points.size):
        for bi in range(ai + 1, points.size):
            a, b = float(points[ai]), float(points[bi])
            o = np.minimum(np.minimum(b - a, d), np.minimum(est + d - a, b - lct + d))
            o = np.maximum(o, 0.0)
            for share in _dff_family(o / (b - a)):
                best = max(best, float((share[:, None] * fx).sum(axis=0).max()))
    return best


@PROPS
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 4))
def test_bound_grouped_by_window_finds_the_direct_sum(seed: int, n: int, kinds: int) -> None:
    rng = np.random.default_rng(seed)
    horizon = 200
    d = rng.integers(5, 60, size=kinds)[rng.integers(0, kinds, size=n)]
    est = rng.choice([0, 40], size=n)
    lct = np.minimum(horizon, est + d + rng.choice([0, 30, 200], size=n))
    q = rng.uniform(0.05, 0.7, size=(n, 3)) * np.array(CAP)
    # The bound samples 48 window ends; the direct sum uses all of them: compare only when equal.
    if np.unique(np.concatenate(([0, horizon], est, lct, est + d, lct - d))).size > 48:
        return
    assert _bound_from(q, d, est, lct, CAP, horizon) >= math.ceil(
        _direct_bound(q, d, est, lct) - 1e-6
    )
