"""Constructions (step 2) and the placement orders of the portfolio.

2. Constructions, all over exact per-VM step-function profiles:
   - serial ("plain"): chain components placed whole, predecessors first, a same-VM part
     atomically on one VM; each unit on the first VM where it fits, at its earliest feasible
     start, else on a new VM of the largest flavour. A numpy summary (minimum usage per time
     bucket, all VMs at once) discards VMs that certainly cannot host a task; it changes how
     fast, never what, a placement is found;
   - "edge": as plain, but a task without successors moves to its latest feasible start on that
     VM when that start is less congested (expected demand of all tasks spread over their
     windows): flexible work goes to the ends of the horizon and leaves the middle to tasks that
     must run there. Wins on tight horizons (-5 % VMs);
   - "fill" (one flavour only): chains as plain, then independent tasks fill one VM at a time
     by a time sweep, each instant starting the first task (in the given order) that fits now.
     Wins on independent tasks (uniform family: -4 %, down to 1-2 % above the bound);
   - "lanes" (one flavour, no existing VM; run first when it applies): tasks needing more than
     half of a resource cannot run two at a time on a VM, so a VM runs them in sequence and
     placing them is 1D bin packing of durations into horizon-long lanes. Each lane takes the
     longest task left plus the subset of the others that fills the rest best (bounded subset
     sum over distinct durations); one lane per new VM, then "fill" for everything else. Only
     free-standing tasks that may end at the horizon join; released ones are dealt first to
     the ends of lanes, backwards (in reverse time a release is a deadline), and the tasks
     ready at 0 fill what is left of those lanes before new ones open. Bimodal family: 1,000 tasks
     47 -> 46 VMs (the bound), 10,000 tasks 527 -> 514 (bound 513): by area, first fit left
     heavy lanes 10-80 min short of full. The same with m = 2-4 lanes per VM for tasks that
     need more than 1/(m+1) of a resource and at most 1/m of each (run last, when the budget
     allows): m of them always fit side by side.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections.abc import Callable, Sequence

import numpy as np

from platform_assets.processing.planner.model import _REL_EPS, Vec, _as_vec, _fits
from platform_assets.processing.planner.preprocessing import _Problem
from platform_assets.processing.planner.schedule import _ScheduleBase


class _Sweep:
    """State of a fill construction: one row per independent task, in priority order."""

    def __init__(self, prob: _Problem, tasks: list[int]) -> None:
        self.tasks = tasks
        self.q = np.array([prob.q[i] for i in tasks], dtype=float).reshape(-1, 3)
        self.d = np.array([prob.d[i] for i in tasks], dtype=np.int64)
        self.est = np.array([prob.est[i] for i in tasks], dtype=np.int64)
        self.lst = np.array([prob.lct[i] - prob.d[i] for i in tasks], dtype=np.int64)
        self.free = np.ones(len(tasks), dtype=bool)

    def compact(self) -> None:
        """Drop placed rows once they are the majority, so each sweep step stays cheap."""
        keep = self.free
        if keep.sum() * 2 > keep.size:
            return
        self.tasks = [i for i, k in zip(self.tasks, keep.tolist(), strict=True) if k]
        self.q, self.d = self.q[keep], self.d[keep]
        self.est, self.lst = self.est[keep], self.lst[keep]
        self.free = np.ones(len(self.tasks), dtype=bool)


class _Constructions(_ScheduleBase):
    """The constructions: serial first fit, time-sweep fill, exclusive lanes."""

    def construct(self, comp_order: list[int]) -> None:
        """Place components in the given order, each chain predecessor-first."""
        for c in comp_order:
            self._place_serially(self.prob.comps[c])

    def construct_fill(self, comp_order: list[int]) -> None:
        """Chains first (serially), then fill one VM at a time with a time sweep.

        At each instant a VM has room, the first task in ``comp_order`` that fits now starts
        there. Earlier starts are fixed, so a task that fits at the instant fits throughout unless
        fixed or chain load rises later, which the exact check catches. Packs tighter than first
        fit because the order no longer decides which gaps stay open. Chains stay serial: joining
        the sweep task by task scattered them (+50 % VMs), as whole blocks on one VM +25 %.
        """
        prob, fleet = self.prob, self.fleet
        flavour = self.flavours[0] if self.flavours else None
        single: list[int] = []
        for c in comp_order:
            roots = prob.comps[c]
            r = roots[0]
            if (
                flavour is not None
                and len(roots) == 1
                and len(prob.members[r]) == 1
                and prob.pin[r] < 0
                and r not in self.reasons
                and _fits(prob.q[r], _as_vec(flavour.capacity))
            ):
                single.append(r)
            else:
                self._place_serially(roots)
        if not single:
            return
        assert flavour is not None
        st = _Sweep(prob, single)
        v = 0
        while st.free.any():
            if v == len(fleet.names):
                if fleet.alive_count >= self.limits.max_vms:
                    for j in np.flatnonzero(st.free).tolist():
                        self.drop(st.tasks[j], f"max_vms={self.limits.max_vms} reached")
                    return
                fleet.add_vm("new", flavour, _as_vec(flavour.capacity))
            took = self._fill_vm(v, st) if fleet.alive[v] else 0
            if not took and v >= self.n_existing and not fleet.tasks_on[v]:
                raise AssertionError("a fresh VM took no task")  # each task fits the flavour
            st.compact()
            v += 1

    def construct_lanes(
        self, lanes: list[list[int]], comp_order: list[int], per_vm: int = 1
    ) -> None:
        """Lane tasks back to back from their releases, ``per_vm`` lanes per new VM, then ``fill``
        the rest."""
        flavour = self.flavours[0]
        for first in range(0, len(lanes), per_vm):
            v = self.fleet.add_vm("new", flavour, _as_vec(flavour.capacity))
            for lane in lanes[first : first + per_vm]:
                t = 0
                for i in lane:  # released tasks last, by release: each as early as it may
                    t = max(t, self.prob.est[i])
                    self.put(i, v, t)
                    t += self.prob.d[i]
        self.construct_fill([c for c in comp_order if self.where[self.prob.comps[c][0]] is None])

    def _place_serially(self, roots: list[int]) -> None:
        """Place units in the given (topological) order with first fit."""
        for root in roots:
            if root not in self.reasons:
                reason = self.place_unit(root)
                if reason is not None:
                    self.drop(root, reason)

    def _fill_vm(self, v: int, st: _Sweep) -> int:
        """Sweep VM v over time, starting the first task that fits; returns how many it took."""
        fleet, prob = self.fleet, self.prob
        prof = fleet.profiles[v]
        lim = fleet.limits[v]
        q, d, est, lst, free = st.q, st.d, st.est, st.lst, st.free
        placed = 0
        t = 0
        refused: list[int] = []
        while True:
            fleet.work += 8 + q.shape[0] // 12
            k = bisect_right(prof.times, t) - 1
            room = (lim[0] - prof.cpu[k], lim[1] - prof.ram[k], lim[2] - prof.sto[k])
            ok = free & (est <= t) & (lst >= t)
            ok &= q[:, 0] <= room[0]
            ok &= q[:, 1] <= room[1]
            ok &= q[:, 2] <= room[2]
            if refused:
                ok[refused] = False
            j = int(ok.argmax())
            if ok[j] and len(refused) < 8:  # rising fixed load ahead: try a few, then move on
                i, dur = st.tasks[j], int(d[j])
                if fleet.earliest(v, prob.q[i], dur, t, t + dur) == t:
                    self.put(i, v, t)
                    free[j] = False
                    placed += 1
                else:
                    refused.append(j)
                continue
            retry = bool(refused)  # a task that fits the room may still start later
            refused = []
            if not free.any():
                return placed
            # Next instant worth a look: the usage changes, or a task is released that fits the
            # room left until then. The room is constant up to the next change, so nothing
            # starts at a release that does not fit it (unless a refused task may start later):
            # stepping through those made one sweep of a held-out 10,000-task input take 20 s.
            released = free & (est > t)
            can = released
            if not retry:
                can = can & (q[:, 0] <= room[0]) & (q[:, 1] <= room[1]) & (q[:, 2] <= room[2])
            later = est[can]
            steps = [int(later.min())] if later.size else []
            if k + 1 < len(prof.times):
                steps.append(prof.times[k + 1])
            last = int(lst[free].max())
            nxt = min(steps) if steps else last + 1
            # The instants skipped are charged as if swept, one step each: the work budget, so
            # the portfolio's runs and its plans, stay what they were.
            skipped = est[released & (est < nxt) & (est <= last)]
            fleet.work += (8 + q.shape[0] // 12) * int(np.unique(skipped).size)
            if nxt > last:
                return placed
            t = nxt


# ---------------------------------------------------------------------------------------------
# Placement orders
# ---------------------------------------------------------------------------------------------


def _component_stats(prob: _Problem) -> list[tuple]:
    """Per chain component: (index, area, total duration, max demand, slack, index, mix)."""
    ref = prob.ref_cap
    stats = []
    seen: dict[bytes, int] = {}
    for c, roots in enumerate(prob.comps):
        tasks = [i for r in roots for i in prob.members[r]]
        dom = [max(prob.q[i][r] / ref[r] for r in range(3)) for i in tasks]
        area = sum(x * prob.d[i] for x, i in zip(dom, tasks, strict=True))
        length = sum(prob.d[i] for i in tasks)
        slack = min(prob.lct[i] - prob.est[i] - prob.d[i] for i in tasks)
        # Interleave by content and rank among identical components, never by key: renaming
        # tasks must not change the plan.
        sig = prob.sig[roots[0]]
        rank = seen[sig] = seen.get(sig, -1) + 1
        mix = hashlib.blake2b(sig + rank.to_bytes(8, "big"), digest_size=8).digest()
        stats.append((c, area, length, max(dom), slack, c, mix))
    return stats


_RULES: list[Callable[[tuple], tuple]] = [
    lambda s: (-s[1], -s[2], s[5]),  # area (dominant resource x duration)
    lambda s: (s[6], s[5]),  # a fixed pseudo-random mix: sizes interleave over time
    lambda s: (s[4], -s[1], s[5]),  # least slack first, then area
    lambda s: (-s[2], -s[1], s[5]),  # duration
    lambda s: (-s[3], -s[1], s[5]),  # dominant demand
    lambda s: (s[1], s[2], s[5]),  # smallest area first: the most tasks under a VM limit
]
_SMALLEST_FIRST = len(_RULES) - 1  # the portfolio runs it only when the VM limit binds


def _component_orders(prob: _Problem) -> list[list[int]]:
    """Deterministic component orders for the portfolio, strongest first."""
    stats = _component_stats(prob)
    return [[s[0] for s in sorted(stats, key=rule)] for rule in _RULES]


def _lanes(prob: _Problem, cap: Vec, per_vm: int = 1, max_cells: int = 8192) -> list[list[int]]:
    """Lanes of tasks of which at most ``per_vm`` can share a VM at one instant, packed by duration.

    Tasks needing more than half of one resource exclude each other, so a VM runs them one
    after another: placing them is 1D bin packing of durations into horizon-long lanes, which
    first fit by area does badly (bimodal 1,000: 47 VMs where 46 lanes hold every heavy task).
    With ``per_vm`` = m > 1 the same holds for tasks needing more than 1/(m+1) of a resource
    and at most 1/m of each: any m of them fit side by side, so a VM runs m lanes (a routine
    catalogue whose main routine takes a third of a VM: tuning 1,032 tasks 44 -> 43 VMs, the
    bound). Free-standing tasks that may end at the horizon join, released ones too: a lane
    runs its tasks in order of release, each as early as it may (released tasks go to the ends
    of lanes, see below; a tuning catalogue with a quarter of its tasks released late: 4 -> 3
    VMs, the bound, where lanes of the ready tasks alone left no room for them). The resource
    with the most such task-time is used. Durations and releases are counted on a grid of at
    most ``max_cells`` steps per horizon, rounded up (never overfull); a task that no longer
    fits a lane once rounded is left to the other constructions.
    """
    horizon = prob.horizon
    best: list[int] = []
    tol = 1 + _REL_EPS
    for r in range(3):
        big = [
            i
            for i in prob.placeable()
            if prob.pred[i] < 0
            and not prob.succs[i]
            and prob.pin[i] < 0
            and prob.lct[i] >= horizon
            and prob.q[i][r] * (per_vm + 1) > cap[r] * tol
            and all(prob.q[i][x] * per_vm <= cap[x] * tol for x in range(3))
        ]
        if sum(prob.d[i] for i in big) > sum(prob.d[i] for i in best):
            best = big
    if len(best) < 2:
        return []
    step = math.gcd(horizon, *(prob.d[i] for i in best), *(prob.est[i] for i in best))
    step = max(step, -(-horizon // max_cells))
    cells = horizon // step
    # Rounded up: durations and releases (a later release is a tighter deadline in reverse).
    size = {i: -(-prob.d[i] // step) for i in best}
    ready = {i: -(-prob.est[i] // step) for i in best}
    best = [i for i in best if ready[i] + size[i] <= cells]
    if len(best) < 2:
        return []
    # Released tasks first, backwards from the horizon: in reverse time a release is a
    # deadline, and a lane meets its deadlines iff taken by deadline (EDD), so each goes to the
    # first lane whose load still ends by its deadline. Tasks ready at 0 then fill the room.
    tails: list[list[int]] = []
    loads: list[int] = []
    for i in sorted((i for i in best if ready[i] > 0), key=lambda i: (-ready[i], -size[i], i)):
        for k, load in enumerate(loads):
            if load + size[i] <= cells - ready[i]:
                tails[k].append(i)
                loads[k] += size[i]
                break
        else:
            tails.append([i])
            loads.append(size[i])
    free = [i for i in best if ready[i] == 0]
    lanes = _pack_lanes([size[i] for i in free], cells, [cells - load for load in loads])
    out = [[free[j] for j in lane] for lane in lanes]
    for k, tail in enumerate(tails):
        out[k].extend(tail)
    return [sorted(lane, key=lambda i: (prob.est[i], -prob.d[i], i)) for lane in out]


def _pack_lanes(sizes: list[int], capacity: int, opened: Sequence[int] = ()) -> list[list[int]]:
    """1D bin packing: item indices grouped into bins whose sizes sum to at most ``capacity``.

    Bins already ``opened`` with the given room left come first (each may stay empty), in
    order; then each new bin takes the largest item left. Every bin is then filled with the
    subset of the items left that fills its room best: a bounded subset sum over the distinct
    sizes, one numpy pass per copy of a size, remembering which size first reached each sum.
    Deterministic; items fit by assumption.
    """
    left: dict[int, list[int]] = {}
    for j in sorted(range(len(sizes)), key=lambda j: (-sizes[j], j)):
        left.setdefault(sizes[j], []).append(j)
    bins: list[list[int]] = []
    rooms = list(opened)
    while left or rooms:
        lane: list[int] = []
        if rooms:
            room = rooms.pop(0)
        else:
            largest = max(left)
            lane = [_take(left, largest)]
            room = capacity - largest
        reach = np.zeros(room + 1, dtype=bool)
        reach[0] = True
        via = np.zeros(room + 1, dtype=np.int64)
        for size in sorted((s for s in left if 0 < s <= room), reverse=True):
            for _ in range(min(len(left[size]), room // size)):
                new = np.flatnonzero(reach[:-size] & ~reach[size:]) + size
                if new.size == 0:
                    break
                reach[new] = True
                via[new] = size
        filled = int(np.flatnonzero(reach)[-1])
        while filled > 0:
            lane.append(_take(left, int(via[filled])))
            filled -= int(via[filled])
        if 0 in left:  # zero-size items cost nothing: the first bin takes them all
            lane.extend(left.pop(0))
        bins.append(lane)
    return bins


def _take(left: dict[int, list[int]], size: int) -> int:
    """Remove and return the next item of the given size."""
    items = left[size]
    j = items.pop(0)
    if not items:
        del left[size]
    return j


def _congestion(prob: _Problem, buckets: int = 128) -> tuple[int, list[float], list[float]]:
    """Expected demand over time if every task started uniformly at random within its window.

    Used to pick, between a task's earliest and latest start on its VM, the one out of the
    crowd: flexible tasks move to the edges and leave the forced middle to inflexible ones.
    """
    idx = prob.placeable()
    width = max(1, -(-prob.horizon // buckets))
    nb = -(-prob.horizon // width)
    mids = (np.arange(nb) + 0.5) * width
    ref = prob.ref_cap
    dens = np.zeros(nb)
    for lo in range(0, len(idx), 2048):
        part = idx[lo : lo + 2048]
        est = np.array([prob.est[i] for i in part], dtype=float)[:, None]
        d = np.array([prob.d[i] for i in part], dtype=float)[:, None]
        lst = np.array([prob.lct[i] - prob.d[i] for i in part], dtype=float)[:, None]
        x = np.array([max(prob.q[i][r] / ref[r] for r in range(3)) for i in part])[:, None]
        present = np.minimum(mids, lst) - np.maximum(mids - d, est)
        dens += (np.clip(present, 0.0, None) / (lst - est + 1.0) * x).sum(axis=0)
    prefix = np.concatenate(([0.0], np.cumsum(dens * width)))
    return width, prefix.tolist(), dens.tolist()


def _unit_key(prob: _Problem) -> Callable[[int], tuple]:
    """Sort key for re-inserting units: largest area first, then index (computed once)."""
    ref = prob.ref_cap
    keys = {
        root: (
            -sum(max(prob.q[i][r] / ref[r] for r in range(3)) * prob.d[i] for i in members),
            root,
        )
        for root, members in prob.members.items()
    }
    return keys.__getitem__
