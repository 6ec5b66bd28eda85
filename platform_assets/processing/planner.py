"""Pure, deterministic placement of processing tasks onto virtual machines.

Problem: every task needs CPU, RAM and storage for ``duration_s`` seconds inside ``[0, horizon)``;
a VM's tasks must fit its flavour at every instant; chained tasks start after their predecessor
ends (on the same VM when they share data); started tasks are fixed load on their VM. Objective:
as few new VMs as possible; every task is either assigned or unplaced with a reason naming the
resource or limit.

Why heuristics first, and CP-SAT only for small inputs
------------------------------------------------------
A 10,000-task, ~100-VM model has a million optional intervals: CP-SAT finds nothing useful in
seconds, and under a wall-clock limit its answer would depend on machine load. So:

1. Preprocessing (exact): unknown or cyclic predecessors, tasks no flavour can hold and tasks
   that cannot end within the horizon (their chain pushes the earliest start) are unplaced with
   a reason; successors of an unplaced task follow it. Each remaining task gets a window
   ``[est, lct]``: ``est`` from the chain before it, ``lct`` leaves room for the chain after it,
   so a task placed inside its window never strands its successors.
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
     free-standing tasks whose window is the whole horizon join. Bimodal family: 1,000 tasks
     47 -> 46 VMs (the bound), 10,000 tasks 527 -> 514 (bound 513): by area, first fit left
     heavy lanes 10-80 min short of full.
3. Portfolio: orders by area (dominant resource x duration), a fixed pseudo-random mix (a key
   hash), slack, duration and dominant demand, crossed with the constructions, then key
   order; the best plan is kept. Effort is capped by a deterministic work counter (filter cells,
   scanned segments, sweep steps), never by the clock: small inputs run everything, 10,000 tasks
   a few runs (2-3.5 s on the shared 2-core benchmark machine, 4-6 s on a slower day).
4. Improvement: try to empty the least-loaded new VM by re-inserting its units elsewhere
   (chains re-timed within their neighbours' windows), undone when one does not fit. Then, with
   the rest of the budget, ejection chains: the units of the VM to empty form a pool, largest
   first; one that fits nowhere goes where it displaces the least area (at most 3 units, none
   more than 4x its area, none just inserted), and the displaced units join the pool; the attempt
   succeeds when the pool is empty and is undone otherwise (3 M work units per attempt). Plain
   re-insertion fails once the other VMs are ~95 % full; ejection still frees one VM on tight
   1,000 (and did on bimodal 1,000 before "lanes") at ~2 s, and finds nothing on chains or at
   10,000 tasks, not even with 3x the budget and 10x the work per attempt. A seeded
   ruin-and-recreate search and jittered restarts were tried and removed: on every benchmark
   family they found nothing the portfolio had not.
5. CP-SAT where it pays: one flavour, no existing VM, <= 100 tasks, heuristic above the lower
   bound. It asks for a plan with one VM fewer (optional intervals per VM, per-VM and fleet-wide
   cumulatives, VM symmetry broken), with one worker, a fixed seed and deterministic limits
   (0.5 deterministic seconds, 2,000 conflicts), so the same input gives the same answer. On 64
   seeded 15-100-task instances it saved 4 VMs of 171 at up to ~3 s per plan; larger limits
   saved a few more but took up to 30 s per plan, and beyond 100 tasks it found nothing in
   seconds.

Large-neighbourhood search with CP-SAT sub-problems was tried after step 4 and not kept (one
worker, fixed seed, deterministic limits; windows narrowed by the chained tasks outside the set):
- "k VMs onto k-1": all tasks of the least-loaded VM and k-1 partners (least loaded, or all
  partner tuples) re-placed on k-1 of them. Proven infeasible in ~0 s for k <= 5 on tight-100,
  k <= 4 on chains-1000 and k = 5 on tight-1000 (each set's peak load exceeds k-1 VMs); k = 6-8
  ends UNKNOWN after 2-3 deterministic seconds per attempt, i.e. about 5-13 s here;
- "shrink, then drain": minimise the area left on the least-loaded VM over it plus 1-3 partners
  (current plan as hint, 0.02-0.3 deterministic s per sub-problem), alternated with ``drain``.
  tight-1000 86 -> 85 after 2.6 deterministic s (~10 s here) and 84 after 6.1 (~24 s): beyond
  the 10 s per instance limit for 1.3 % of that instance. tight-100 stays at 8 (35 % of the
  VM's load left after all partner triples, 21 deterministic s); bimodal and chains 1,000 gain
  nothing. An 8x larger improvement budget (and 3x work per ejection attempt) finds nothing
  more on tight or bimodal 1,000 either.

Also tried for the remaining gap and not kept: lanes of similar-size tasks for every family
(tight 1,000: 90-93 VMs against 86, uniform 1,000: 18-21 against 14: tasks sharing a lane
differ too much in size); latest-start ("as late as possible") constructions (tight 1,000:
92-95); a global list schedule over a fixed fleet, least slack first (tight 1,000 needs 100);
congestion re-estimated from the previous plan's load (at best what improvement already
reaches).

Lower bound (``lower_bound``), the max of:
(a) energy on the whole horizon per resource, also after dual-feasible transforms of the demand
    fractions (Fekete & Schepers): the identity gives the plain area bound ceil(sum(r x d) /
    (capacity x horizon)); the "big item" transforms count tasks that cannot share a VM;
(b) energetic reasoning on windows [a, b] between sampled window ends, with each task's minimal
    overlap o given its chain window (where chains and tight horizons make (a) weak), and
    "time lanes": the same transforms applied to the share o / (b - a) as well;
(c) the load forced at one instant by tasks whose window is shorter than twice their duration.
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

Determinism: tasks are handled in key order internally, every sort key ends in a task key, no
dict order, clock, hash() or randomness is used: the same input in any order gives the
same plan. Capacities are compared with a relative tolerance of 1e-9 (CPU and storage are floats).
"""

from __future__ import annotations

import hashlib
import heapq
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "Assignment",
    "BusySlot",
    "ExistingVm",
    "Flavour",
    "Limits",
    "Plan",
    "PlanningInputError",
    "Resources",
    "TaskRequest",
    "Unplaced",
    "first_fit",
    "lower_bound",
    "plan",
]

_REL_EPS = 1e-9
_CHUNK = 1024  # VMs per filter evaluation
_BUCKETS = 128  # time buckets of the coarse filter; more = sharper filter, costlier per call
_CPSAT_MAX_TASKS = 100
_CPSAT_DETERMINISTIC_TIME = 0.5
_CPSAT_MAX_CONFLICTS = 2_000
# Deterministic effort cap in units of Fleet.work (about 0.1 us each here): more orders and
# improvement while it lasts, so small inputs get the whole portfolio and 10k tasks stay fast.
_WORK_BUDGET = 20_000_000
# Ejection chains (``_Schedule.drain``): work per attempt to empty a VM, least-loaded VMs tried
# per round, most units displaced per insertion, how much bigger than the inserted unit a
# displaced one may be (in area), and how many recent insertions may not be displaced again.
_DRAIN_WORK = 3_000_000
_DRAIN_TRIES = 3
_EJECT_UNITS = 3
_EJECT_SLACK = 4.0
_TABU = 10


# ---------------------------------------------------------------------------------------------
# Public model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """CPU cores, RAM in MB and storage in GB: a capacity or a demand."""

    cpu: float
    ram_mb: int
    storage_gb: float


@dataclass(frozen=True)
class Flavour:
    """A VM size that can be started."""

    name: str
    capacity: Resources


@dataclass(frozen=True)
class TaskRequest:
    """A task to place; it starts after ``preceding`` ends, on its VM if ``same_vm_as_preceding``."""

    key: str
    cpu: float
    ram_mb: int
    storage_gb: float
    duration_s: int
    preceding: str | None = None
    same_vm_as_preceding: bool = False
    earliest_start_s: int = 0


class BusySlot(NamedTuple):
    """Fixed load of a started task on an existing VM; ``task_key`` lets later tasks chain on it.

    A plain ``(start_s, end_s, Resources)`` tuple is accepted as well. To chain onto a task that
    already finished, list it with its key and an ``end_s`` <= 0.
    """

    start_s: int
    end_s: int
    load: Resources
    task_key: str | None = None


@dataclass(frozen=True)
class ExistingVm:
    """A running VM; its started tasks stay where they are."""

    name: str
    flavour: Flavour
    busy: tuple[BusySlot, ...] = ()


@dataclass(frozen=True)
class Limits:
    """How many VMs may exist in total (existing + new) and when every task must have ended."""

    max_vms: int
    horizon_s: int


@dataclass(frozen=True)
class Assignment:
    """Where and when a task runs: ``[start_s, end_s)`` on ``vm_name``."""

    task_key: str
    vm_name: str
    start_s: int
    end_s: int


@dataclass(frozen=True)
class Unplaced:
    """A task the planner could not place, with the resource or limit that stopped it."""

    task_key: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """Assignments sorted by (VM, start, key); new VMs as (name, flavour name); unplaced by key."""

    assignments: tuple[Assignment, ...]
    new_vms: tuple[tuple[str, str], ...]
    unplaced: tuple[Unplaced, ...]


class PlanningInputError(ValueError):
    """Malformed input (duplicate key, negative duration, ...); names the offending item."""


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------

Vec = tuple[float, float, float]


@dataclass
class _Problem:
    """Tasks in key order with their windows, chain structure and the reasons found up front."""

    keys: list[str]
    q: list[Vec]
    d: list[int]
    est: list[int]
    lct: list[int]
    pred: list[int]  # index of a requested predecessor, -1 if none
    pred_key: list[str | None]
    same_vm: list[bool]
    pin: list[int]  # existing-VM index a task must run on (same-VM chain on a started task)
    succs: list[list[int]]
    group: list[int]  # root of the same-VM group
    members: dict[int, list[int]]  # group root -> members in topological order
    comps: list[list[int]]  # per chain component: unit roots in placement (DFS) order
    reasons: dict[int, str]
    horizon: int
    ref_cap: Vec  # per-resource largest capacity, to weigh demands

    def placeable(self) -> list[int]:
        """Indices not rejected during preprocessing."""
        return [i for i in range(len(self.keys)) if i not in self.reasons]


def _fmt_num(x: float) -> str:
    return f"{x:g}"


def _fmt_ram(mb: float) -> str:
    mb_i = int(round(mb))
    if mb_i % 1024 == 0 and mb_i >= 1024:
        return f"{mb_i // 1024} GB"
    return f"{_fmt_num(mb)} MB"


def _fmt_resource(r: int, amount: float) -> str:
    if r == 0:
        return f"{_fmt_num(amount)} CPU"
    if r == 1:
        return f"{_fmt_ram(amount)} RAM"
    return f"{_fmt_num(amount)} GB storage"


def _fmt_capacity(r: int, amount: float) -> str:
    if r == 0:
        return f"{_fmt_num(amount)} CPU"
    if r == 1:
        return _fmt_ram(amount)
    return f"{_fmt_num(amount)} GB"


def _fits(q: Vec, cap: Vec) -> bool:
    return all(q[r] <= cap[r] * (1 + _REL_EPS) + _REL_EPS for r in range(3))


def _capacity_reason(q: Vec, caps: Sequence[Vec], what: str = "largest flavour") -> str:
    """Name the first resource no capacity covers, or say that none covers all at once."""
    if not caps:
        return "needs a new VM but no flavour is available"
    for r in range(3):
        biggest = max(c[r] for c in caps)
        if q[r] > biggest * (1 + _REL_EPS) + _REL_EPS:
            return f"needs {_fmt_resource(r, q[r])}, {what} has {_fmt_capacity(r, biggest)}"
    parts = ", ".join(_fmt_resource(r, q[r]) for r in range(3))
    return f"needs {parts} at once, no flavour has all of it"


def _horizon_reason(est: int, d: int, horizon: int) -> str:
    if est <= 0:
        return f"would end after the horizon (needs {d} s, horizon {horizon} s)"
    return f"would end after the horizon (earliest start {est} s, needs {d} s, horizon {horizon} s)"


def _as_vec(r: Resources) -> Vec:
    return (float(r.cpu), float(r.ram_mb), float(r.storage_gb))


def _check_number(value: float, what: str, key: str) -> None:
    if not math.isfinite(value) or value < 0:
        raise PlanningInputError(f"{what} of {key!r} must be a finite number >= 0, got {value!r}")


def _busy_slots(vm: ExistingVm) -> list[BusySlot]:
    return [b if isinstance(b, BusySlot) else BusySlot(*b) for b in vm.busy]


def _prepare(
    tasks: Sequence[TaskRequest],
    flavour_caps: Sequence[Vec],
    existing: Sequence[ExistingVm],
    limits: Limits,
) -> _Problem:
    """Validate, resolve chains, compute windows and reject what no plan could place."""
    horizon = limits.horizon_s
    if horizon < 1:
        raise PlanningInputError(f"horizon_s must be >= 1, got {horizon}")
    if limits.max_vms < 0:
        raise PlanningInputError(f"max_vms must be >= 0, got {limits.max_vms}")
    ordered = sorted(tasks, key=lambda t: t.key)
    index: dict[str, int] = {}
    for i, t in enumerate(ordered):
        if t.key in index:
            raise PlanningInputError(f"duplicate task key {t.key!r}")
        index[t.key] = i
        if int(t.duration_s) != t.duration_s or t.duration_s < 1:
            raise PlanningInputError(f"duration_s of {t.key!r} must be an integer >= 1")
        if int(t.earliest_start_s) != t.earliest_start_s or t.earliest_start_s < 0:
            raise PlanningInputError(f"earliest_start_s of {t.key!r} must be an integer >= 0")
        _check_number(t.cpu, "cpu", t.key)
        _check_number(t.ram_mb, "ram_mb", t.key)
        _check_number(t.storage_gb, "storage_gb", t.key)

    started: dict[str, tuple[int, int]] = {}  # key -> (existing VM index, end)
    host_caps: list[Vec] = list(flavour_caps)
    for v, vm in enumerate(existing):
        host_caps.append(_as_vec(vm.flavour.capacity))
        for slot in _busy_slots(vm):
            if slot.task_key is None:
                continue
            if slot.task_key in started or slot.task_key in index:
                raise PlanningInputError(
                    f"task {slot.task_key!r} is listed twice (started on {vm.name!r} and "
                    "elsewhere); a started task must not be requested again"
                )
            started[slot.task_key] = (v, int(slot.end_s))

    n = len(ordered)
    keys = [t.key for t in ordered]
    q = [(float(t.cpu), float(t.ram_mb), float(t.storage_gb)) for t in ordered]
    d = [int(t.duration_s) for t in ordered]
    est = [int(t.earliest_start_s) for t in ordered]
    pred = [-1] * n
    pin = [-1] * n
    same_vm = [bool(t.same_vm_as_preceding) for t in ordered]
    pred_key = [t.preceding for t in ordered]
    reasons: dict[int, str] = {}
    succs: list[list[int]] = [[] for _ in range(n)]
    for i, t in enumerate(ordered):
        before = t.preceding
        if before is None:
            same_vm[i] = False
        elif before in index:
            pred[i] = index[before]
            succs[index[before]].append(i)
        elif before in started:
            v, end = started[before]
            est[i] = max(est[i], end)
            if same_vm[i]:
                pin[i] = v
            same_vm[i] = False  # no requested predecessor to share a group with
        else:
            reasons[i] = (
                f"preceding task {before} is neither requested nor started on an existing VM"
            )

    # Cycles: each task has at most one predecessor, so follow the pointers.
    state = [0] * n  # 0 new, 1 on current path, 2 done
    for start in range(n):
        path: list[int] = []
        i = start
        while i >= 0 and state[i] == 0:
            state[i] = 1
            path.append(i)
            i = pred[i]
        if i >= 0 and state[i] == 1:
            cycle = path[path.index(i) :]
            text = " -> ".join(keys[j] for j in [*cycle, cycle[0]])
            for j in cycle:
                reasons[j] = f"preceding tasks form a cycle ({text})"
        for j in path:
            state[j] = 2

    # Topological order (Kahn, key order); cycle members and what follows them are never reached.
    topo: list[int] = [i for i in range(n) if pred[i] < 0]
    head = 0
    while head < len(topo):
        topo.extend(succs[topo[head]])
        head += 1
    reached = set(topo)
    for i in range(n):
        if i not in reached and i not in reasons:
            reasons[i] = f"preceding task {pred_key[i]} is unplaced"

    flav = list(flavour_caps)
    ref = tuple(max([c[r] for c in host_caps] or [1.0]) or 1.0 for r in range(3))
    for i in topo:
        p = pred[i]
        if i in reasons:
            continue
        if p >= 0:
            if p in reasons:
                reasons[i] = f"preceding task {keys[p]} is unplaced"
                continue
            est[i] = max(est[i], est[p] + d[p])
            if same_vm[i]:
                pin[i] = pin[p]
        if pin[i] >= 0:
            cap = _as_vec(existing[pin[i]].flavour.capacity)
            if not _fits(q[i], cap):
                anchor = pred_key[i]
                reasons[i] = _capacity_reason(
                    q[i], [cap], f"{existing[pin[i]].name} (same VM as preceding task {anchor})"
                )
                continue
        elif not any(_fits(q[i], c) for c in host_caps):
            reasons[i] = _capacity_reason(q[i], flav or host_caps)
            continue
        if est[i] + d[i] > horizon:
            reasons[i] = _horizon_reason(est[i], d[i], horizon)
    lct = [horizon] * n
    for i in reversed(topo):
        if i in reasons:
            continue
        for s in succs[i]:
            if s not in reasons:
                lct[i] = min(lct[i], lct[s] - d[s])

    group = list(range(n))
    members: dict[int, list[int]] = {}
    comp_of = list(range(n))
    comps: dict[int, list[int]] = {}
    for i in _dfs_order(pred, succs, reasons):
        p = pred[i]
        if p >= 0:
            comp_of[i] = comp_of[p]
            if same_vm[i]:
                group[i] = group[p]
        if group[i] == i:
            members[i] = [i]
            comps.setdefault(comp_of[i], []).append(i)
        else:
            members[group[i]].append(i)
    return _Problem(
        keys=keys,
        q=q,
        d=d,
        est=est,
        lct=lct,
        pred=pred,
        pred_key=pred_key,
        same_vm=same_vm,
        pin=pin,
        succs=succs,
        group=group,
        members=members,
        comps=[comps[c] for c in sorted(comps)],
        reasons=reasons,
        horizon=horizon,
        ref_cap=ref,  # type: ignore[arg-type]
    )


def _dfs_order(pred: list[int], succs: list[list[int]], reasons: dict[int, str]) -> list[int]:
    """Placeable tasks, each chain tree in preorder so a chain is laid out back to back."""
    out: list[int] = []
    for root in range(len(pred)):
        if pred[root] >= 0 or root in reasons:
            continue
        stack = [root]
        while stack:
            i = stack.pop()
            out.append(i)
            stack.extend(s for s in reversed(succs[i]) if s not in reasons)
    return out


# ---------------------------------------------------------------------------------------------
# Per-VM resource profiles
# ---------------------------------------------------------------------------------------------


class _Profile:
    """Usage of one VM as a step function: segment k covers ``[times[k], times[k+1])``."""

    __slots__ = ("times", "cpu", "ram", "sto")

    def __init__(self) -> None:
        self.times: list[int] = [0]
        self.cpu: list[float] = [0.0]
        self.ram: list[float] = [0.0]
        self.sto: list[float] = [0.0]

    def _split(self, t: int) -> int:
        times = self.times
        k = bisect_left(times, t)
        if k < len(times) and times[k] == t:
            return k
        times.insert(k, t)
        self.cpu.insert(k, self.cpu[k - 1])
        self.ram.insert(k, self.ram[k - 1])
        self.sto.insert(k, self.sto[k - 1])
        return k

    def add(self, s: int, e: int, q: Vec, sign: float = 1.0) -> None:
        """Add (or with sign -1 remove) a load on ``[s, e)``."""
        a = self._split(s)
        b = self._split(e)
        c, r, g = q[0] * sign, q[1] * sign, q[2] * sign
        cpu, ram, sto = self.cpu, self.ram, self.sto
        for k in range(a, b):
            cpu[k] += c
            ram[k] += r
            sto[k] += g

    def earliest(
        self, s: int, d: int, deadline: int, cmax: float, rmax: float, gmax: float
    ) -> int | None:
        """Earliest start >= s such that ``[start, start+d)`` stays under the limits and ends by deadline."""
        times, cpu, ram, sto = self.times, self.cpu, self.ram, self.sto
        n = len(times)
        k = bisect_right(times, s) - 1
        while s + d <= deadline:
            e = s + d
            j = k
            while j < n and times[j] < e:
                if cpu[j] > cmax or ram[j] > rmax or sto[j] > gmax:
                    break
                j += 1
            else:
                return s
            k = j + 1
            if k >= n:
                return None
            s = times[k]
        return None

    def latest(
        self, s_min: int, d: int, deadline: int, cmax: float, rmax: float, gmax: float
    ) -> int | None:
        """Latest start >= s_min such that ``[start, start+d)`` stays under the limits by deadline."""
        times, cpu, ram, sto = self.times, self.cpu, self.ram, self.sto
        st = deadline - d
        while st >= s_min:
            j = bisect_left(times, st + d) - 1
            while True:
                if cpu[j] > cmax or ram[j] > rmax or sto[j] > gmax:
                    st = times[j] - d
                    break
                if times[j] <= st:
                    return st
                j -= 1
        return None

    def min_usage(self, t0: int, t1: int) -> Vec:
        """Per-resource minimum usage over ``[t0, t1)``."""
        times = self.times
        k = bisect_right(times, t0) - 1
        c, r, g = self.cpu[k], self.ram[k], self.sto[k]
        k += 1
        n = len(times)
        while k < n and times[k] < t1:
            c = min(c, self.cpu[k])
            r = min(r, self.ram[k])
            g = min(g, self.sto[k])
            k += 1
        return (c, r, g)

    def peak(self, horizon: int) -> Vec:
        """Per-resource maximum usage before the horizon."""
        k = bisect_left(self.times, horizon)
        return (max(self.cpu[:k]), max(self.ram[:k]), max(self.sto[:k]))


class _Fleet:
    """All VMs of one plan: exact profiles plus a numpy minimum-usage summary per time bucket."""

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self.width = max(1, -(-horizon // _BUCKETS))
        self.nb = -(-horizon // self.width)
        self.names: list[str] = []
        self.flavours: list[Flavour | None] = []  # None for an existing VM
        self.caps: list[Vec] = []
        self.limits: list[Vec] = []  # capacity plus tolerance
        self.profiles: list[_Profile] = []
        self.alive: list[bool] = []
        self.tasks_on: list[dict[int, int]] = []  # task index -> start
        self.alive_count = 0
        self.work = (
            0  # deterministic cost counter: filter cells / 256 + segments / 4 per exact scan
        )
        self._lo = np.zeros((3, 8, self.nb))
        self._lim = np.zeros((8, 3))
        self._alive = np.zeros(8, dtype=bool)

    def add_vm(self, name: str, flavour: Flavour | None, cap: Vec) -> int:
        """Append an empty VM and return its index."""
        v = len(self.names)
        if v == self._lim.shape[0]:
            grow = v * 2
            lo = np.zeros((3, grow, self.nb))
            lo[:, :v] = self._lo
            lim = np.zeros((grow, 3))
            lim[:v] = self._lim
            alive = np.zeros(grow, dtype=bool)
            alive[:v] = self._alive
            self._lo, self._lim, self._alive = lo, lim, alive
        lim_v = tuple(c * (1 + _REL_EPS) + _REL_EPS for c in cap)
        self.names.append(name)
        self.flavours.append(flavour)
        self.caps.append(cap)
        self.limits.append(lim_v)  # type: ignore[arg-type]
        self.profiles.append(_Profile())
        self.alive.append(True)
        self.tasks_on.append({})
        self.alive_count += 1
        self._lim[v] = lim_v
        self._alive[v] = True
        return v

    def kill(self, v: int) -> None:
        """Retire an emptied VM."""
        self.alive[v] = False
        self._alive[v] = False
        self.alive_count -= 1

    def revive(self, v: int) -> None:
        """Undo ``kill`` (a failed attempt to empty v)."""
        self.alive[v] = True
        self._alive[v] = True
        self.alive_count += 1

    def load(self, v: int, s: int, e: int, q: Vec, sign: float = 1.0) -> None:
        """Add or remove load on VM v and keep the bucket summary exact."""
        s = max(s, 0)
        if e <= s:
            return
        self.work += 32
        self.profiles[v].add(s, e, q, sign)
        w, nb = self.width, self.nb
        b0 = s // w
        if b0 >= nb:
            return
        b1 = min((e - 1) // w, nb - 1)
        full0 = -(-s // w)
        full1 = min(e // w, nb)
        if full0 < full1:
            self._lo[:, v, full0:full1] += np.array(q)[:, None] * sign
        prof = self.profiles[v]
        for b in {b0, b1}:
            if not full0 <= b < full1:
                self._lo[:, v, b] = prof.min_usage(b * w, min((b + 1) * w, self.horizon))

    def earliest(self, v: int, q: Vec, d: int, s: int, deadline: int) -> int | None:
        """Exact earliest start of a load on VM v within ``[s, deadline]``."""
        lim = self.limits[v]
        times = self.profiles[v].times
        self.work += 16 + 2 * (bisect_left(times, deadline) - bisect_left(times, s))
        if q[0] > lim[0] or q[1] > lim[1] or q[2] > lim[2]:
            return None
        return self.profiles[v].earliest(
            s, d, deadline, lim[0] - q[0], lim[1] - q[1], lim[2] - q[2]
        )

    def latest(self, v: int, q: Vec, d: int, s: int, deadline: int) -> int | None:
        """Exact latest start of a load on VM v within ``[s, deadline]``."""
        lim = self.limits[v]
        times = self.profiles[v].times
        self.work += 16 + 2 * (bisect_left(times, deadline) - bisect_left(times, s))
        return self.profiles[v].latest(s, d, deadline, lim[0] - q[0], lim[1] - q[1], lim[2] - q[2])

    def candidates(
        self, q: Vec, d: int, s: int, deadline: int, skip: int = -1
    ) -> Iterator[tuple[int, int]]:
        """VMs (in index order) that may host the load, each with a safe earliest-start hint.

        A bucket whose minimum usage leaves no room blocks the whole bucket; a placement covers
        at least ceil(d / width) consecutive buckets, so VMs without such an unblocked run are out.
        Evaluated in chunks of VMs so a first fit found early skips the rest.
        """
        m = len(self.names)
        if m == 0 or s + d > deadline:
            return
        w = self.width
        a = s // w
        b = min(self.nb, -(-deadline // w))
        k = max(1, -(-d // w))
        for c0 in range(0, m, _CHUNK):
            c1 = min(m, c0 + _CHUNK)
            lim = self._lim[c0:c1]
            ok = self._lo[0, c0:c1, a:b] <= (lim[:, 0] - q[0])[:, None]
            ok &= self._lo[1, c0:c1, a:b] <= (lim[:, 1] - q[1])[:, None]
            ok &= self._lo[2, c0:c1, a:b] <= (lim[:, 2] - q[2])[:, None]
            # ok[:, j] becomes "buckets j .. j+k-1 are all unblocked" by doubling the run length.
            span, passes = 1, 5
            while span < k:
                step = min(span, k - span)
                ok = ok[:, :-step] & ok[:, step:]
                span += step
                passes += 1
            self.work += (c1 - c0) * (b - a) * passes // 256
            usable = ok.any(axis=1) & self._alive[c0:c1]
            if c0 <= skip < c1:
                usable[skip - c0] = False
            for r in np.flatnonzero(usable).tolist():
                yield c0 + r, max(s, (a + int(ok[r].argmax())) * w)

    def find(self, q: Vec, d: int, s: int, deadline: int, skip: int = -1) -> tuple[int, int] | None:
        """First VM (index order) where the load fits, with its earliest start."""
        for v, hint in self.candidates(q, d, s, deadline, skip):
            st = self.earliest(v, q, d, hint, deadline)
            if st is not None:
                return v, st
        return None


# ---------------------------------------------------------------------------------------------
# Schedule construction and improvement
# ---------------------------------------------------------------------------------------------


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


class _Schedule:
    """One plan under construction: the fleet, where each task is, and why others are not."""

    def __init__(
        self,
        prob: _Problem,
        flavours: Sequence[Flavour],
        existing: Sequence[ExistingVm],
        limits: Limits,
    ) -> None:
        self.prob = prob
        self.flavours = _by_size(flavours)
        self.limits = limits
        self.fleet = _Fleet(prob.horizon)
        self.n_existing = len(existing)
        self.where: list[tuple[int, int] | None] = [None] * len(prob.keys)
        self.reasons: dict[int, str] = dict(prob.reasons)
        self.congestion: tuple[int, list[float], list[float]] | None = None
        for vm in existing:
            v = self.fleet.add_vm(vm.name, None, _as_vec(vm.flavour.capacity))
            for slot in _busy_slots(vm):
                self.fleet.load(v, int(slot.start_s), int(slot.end_s), _as_vec(slot.load))

    # -- windows and single moves ---------------------------------------------------------
    def window(self, i: int) -> tuple[int, int]:
        """Where task i may run now: after its placed predecessor, before its placed successors."""
        prob = self.prob
        s = prob.est[i]
        p = prob.pred[i]
        if p >= 0 and self.where[p] is not None:
            s = max(s, self.where[p][1] + prob.d[p])  # type: ignore[index]
        dl = prob.lct[i]
        for c in prob.succs[i]:
            w = self.where[c]
            if w is not None:
                dl = min(dl, w[1])
        return s, dl

    def cost(self, s: int, d: int) -> float:
        """Expected congestion over ``[s, s+d)``: lower means out of other tasks' way."""
        width, prefix, dens = self.congestion  # type: ignore[misc]

        def at(t: int) -> float:
            b = min(t // width, len(dens) - 1)
            return prefix[b] + (t - b * width) * dens[b] / width

        return at(s + d) - at(s)

    def put(self, i: int, v: int, start: int) -> None:
        """Place task i on VM v at start."""
        d = self.prob.d[i]
        self.fleet.load(v, start, start + d, self.prob.q[i])
        self.fleet.tasks_on[v][i] = start
        self.where[i] = (v, start)

    def take(self, i: int) -> tuple[int, int]:
        """Remove task i from its VM; returns where it was."""
        v, start = self.where[i]  # type: ignore[misc]
        self.fleet.load(v, start, start + self.prob.d[i], self.prob.q[i], -1.0)
        del self.fleet.tasks_on[v][i]
        self.where[i] = None
        return v, start

    def try_on(self, v: int, members: list[int]) -> bool:
        """Place a same-VM unit on VM v member by member; all or nothing."""
        prob = self.prob
        if len(members) > 1 and all(
            prob.pred[members[j]] == members[j - 1] for j in range(1, len(members))
        ):
            # A plain chain never overlaps itself: find all starts first, write only on success.
            starts = []
            prev_end = 0
            for i in members:
                s, dl = self.window(i)
                st = self.fleet.earliest(v, prob.q[i], prob.d[i], max(s, prev_end), dl)
                if st is None:
                    return False
                starts.append(st)
                prev_end = st + prob.d[i]
            for i, st in zip(members, starts, strict=True):
                self.put(i, v, st)
            return True
        done: list[int] = []
        for i in members:
            s, dl = self.window(i)
            st = self.fleet.earliest(v, prob.q[i], prob.d[i], s, dl)
            if st is None:
                for j in reversed(done):
                    self.take(j)
                return False
            self.put(i, v, st)
            done.append(i)
        return True

    def place_unit(self, root: int, skip: int = -1, allow_new: bool = True) -> str | None:
        """Place a unit on existing capacity, else a new VM; None on success, else the reason."""
        prob = self.prob
        members = prob.members[root]
        pin = prob.pin[root]
        if pin >= 0:
            if self.try_on(pin, members):
                return None
            return (
                f"does not fit on {self.fleet.names[pin]} (same VM as preceding task "
                f"{prob.pred_key[root]}) within the horizon ({prob.horizon} s)"
            )
        s, dl = self.window(root)
        q, d = prob.q[root], prob.d[root]
        if len(members) == 1:
            hit = self.fleet.find(q, d, s, dl, skip)
            if hit is not None:
                v, st = hit
                if self.congestion is not None and not prob.succs[root]:
                    late = self.fleet.latest(v, q, d, st, dl)
                    if late is not None and self.cost(late, d) < self.cost(st, d):
                        st = late
                self.put(root, v, st)
                return None
        else:
            # Every member must pass the filter on the same VM: intersect a few members' lists.
            allowed: set[int] | None = None
            ref = prob.ref_cap
            big = sorted(
                members[1:],
                key=lambda i: (-max(prob.q[i][r] / ref[r] for r in range(3)) * prob.d[i], i),
            )
            for i in big[:3]:
                si, dli = self.window(i)
                found = {v for v, _ in self.fleet.candidates(prob.q[i], prob.d[i], si, dli, skip)}
                allowed = found if allowed is None else allowed & found
            for v, _hint in self.fleet.candidates(q, d, s, dl, skip):
                if (allowed is None or v in allowed) and self.try_on(v, members):
                    return None
        if not allow_new:
            return "no room"
        if self.fleet.alive_count >= self.limits.max_vms:
            return f"max_vms={self.limits.max_vms} reached"
        need = tuple(max(prob.q[i][r] for i in members) for r in range(3))
        flavour = next((f for f in self.flavours if _fits(need, _as_vec(f.capacity))), None)  # type: ignore[arg-type]
        if flavour is None:
            flavour = next((f for f in self.flavours if _fits(q, _as_vec(f.capacity))), None)
        if flavour is None:
            return _capacity_reason(q, [_as_vec(f.capacity) for f in self.flavours])
        v = self.fleet.add_vm(f"new-{len(self.fleet.names)}", flavour, _as_vec(flavour.capacity))
        if self.try_on(v, members):
            return None
        # Only a same-VM unit whose branches overload one VM gets here: keep what fits.
        for i in members:
            if i in self.reasons:
                continue
            s, dl = self.window(i)
            at = self.fleet.earliest(v, prob.q[i], prob.d[i], s, dl)
            if at is None:
                self.drop(
                    i,
                    f"does not fit on one VM with its same-VM chain within the horizon ({prob.horizon} s)",
                )
            else:
                self.put(i, v, at)
        return None

    def drop(self, i: int, reason: str) -> None:
        """Mark task i unplaced and everything chained after it."""
        self.reasons[i] = reason
        stack = list(self.prob.succs[i])
        while stack:
            s = stack.pop()
            if s in self.reasons:
                continue
            self.reasons[s] = f"preceding task {self.prob.keys[self.prob.pred[s]]} is unplaced"
            stack.extend(self.prob.succs[s])

    # -- construction ------------------------------------------------------------------------
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

    def construct_lanes(self, lanes: list[list[int]], comp_order: list[int]) -> None:
        """Mutually exclusive tasks back to back, one lane per new VM, then ``fill`` the rest."""
        flavour = self.flavours[0]
        for lane in lanes:
            v = self.fleet.add_vm("new", flavour, _as_vec(flavour.capacity))
            t = 0
            for i in lane:
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
            ok = free & (est <= t) & (lst >= t)
            ok &= q[:, 0] <= lim[0] - prof.cpu[k]
            ok &= q[:, 1] <= lim[1] - prof.ram[k]
            ok &= q[:, 2] <= lim[2] - prof.sto[k]
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
            refused = []
            if not free.any():
                return placed
            # Next instant worth a look: the usage changes or another task is released.
            later = est[free & (est > t)]
            steps = [int(later.min())] if later.size else []
            if k + 1 < len(prof.times):
                steps.append(prof.times[k + 1])
            if not steps:
                return placed
            t = min(steps)
            if t > int(lst[free].max()):
                return placed

    # -- improvement -------------------------------------------------------------------------
    def new_vms(self) -> list[int]:
        return [v for v in range(self.n_existing, len(self.fleet.names)) if self.fleet.alive[v]]

    def vm_load(self, v: int) -> float:
        prob = self.prob
        ref = prob.ref_cap
        return sum(
            max(prob.q[i][r] / ref[r] for r in range(3)) * prob.d[i] for i in self.fleet.tasks_on[v]
        )

    def _unit_order(self, roots: list[int], unit_key: Callable[[int], tuple]) -> list[int]:
        """Units by priority, but a unit chained on another listed unit comes after it."""
        prob = self.prob
        root_set = set(roots)
        waiting: dict[int, list[int]] = {}
        heap = []
        for r in roots:
            p = prob.pred[r]
            if p >= 0 and prob.group[p] in root_set:
                waiting.setdefault(prob.group[p], []).append(r)
            else:
                heap.append((unit_key(r), r))
        heapq.heapify(heap)
        out = []
        while heap:
            _, r = heapq.heappop(heap)
            out.append(r)
            for nxt in waiting.get(r, []):
                heapq.heappush(heap, (unit_key(nxt), nxt))
        return out

    def _reinsert(
        self, vms: list[int], drain: int, fallback: bool, unit_key: Callable[[int], tuple]
    ) -> bool:
        """Lift every unit off ``vms`` and put them back first fit, avoiding ``drain``.

        With ``fallback`` a unit that fits nowhere else may go back on ``drain``. Returns False,
        with everything restored, if some unit found no place at all.
        """
        prob = self.prob
        on = sorted(i for v in vms for i in self.fleet.tasks_on[v])
        original = [(i, self.where[i]) for i in on]
        for i in on:
            self.take(i)
        moved: list[int] = []
        for r in self._unit_order(sorted({prob.group[i] for i in on}), unit_key):
            members = prob.members[r]
            if self.place_unit(r, skip=drain, allow_new=False) is None or (
                fallback and self.try_on(drain, members)
            ):
                moved.extend(members)
                continue
            self._restore(original)
            return False
        return True

    def _restore(self, original: list[tuple[int, tuple[int, int] | None]]) -> None:
        """Put the given tasks back where they were."""
        for i, _ in original:
            if self.where[i] is not None:
                self.take(i)
        for i, spot in original:
            if spot is not None:
                self.put(i, spot[0], spot[1])

    def try_empty(self, v: int, unit_key: Callable[[int], tuple]) -> bool:
        """Move every unit off VM v onto the other VMs; undo everything if one does not fit."""
        if not self._reinsert([v], v, False, unit_key):
            return False
        self.fleet.kill(v)
        return True

    def improve(self, budget: int, target: int, unit_key: Callable[[int], tuple]) -> None:
        """Empty the least-loaded new VMs while that works and the work budget lasts.

        First by plain re-insertion (cheap), then, with what is left of the budget, by ejection
        chains (``drain``), which also succeed when every other VM is nearly full.
        """
        limit = self.fleet.work + budget
        self._empty_plainly(limit, target, unit_key)
        while len(self.new_vms()) > target and self.fleet.work < limit:
            order = sorted(self.new_vms(), key=lambda v: (self.vm_load(v), v))
            if not any(
                self.drain(v, min(limit, self.fleet.work + _DRAIN_WORK), unit_key)
                for v in order[:_DRAIN_TRIES]
            ):
                return

    def _empty_plainly(self, limit: int, target: int, unit_key: Callable[[int], tuple]) -> None:
        """Empty least-loaded new VMs by re-inserting their units first fit elsewhere."""
        failed: set[tuple[int, int]] = set()
        while len(self.new_vms()) > target and self.fleet.work < limit:
            order = sorted(self.new_vms(), key=lambda v: (self.vm_load(v), v))
            progress = False
            for v in order:
                if self.fleet.work >= limit:
                    break
                stamp = (v, len(self.new_vms()))
                if stamp in failed:
                    continue
                if self.try_empty(v, unit_key):
                    progress = True
                    break
                failed.add(stamp)
            if not progress:
                return

    def drain(self, v: int, limit: int, unit_key: Callable[[int], tuple]) -> bool:
        """Empty VM v by an ejection chain; undo everything unless it succeeds by ``limit``.

        Its units form a pool, largest first. A unit that fits nowhere goes on the VM where it
        displaces the least area (at most _EJECT_UNITS units, each smaller than _EJECT_SLACK
        times it, none inserted in the last _TABU steps); the displaced units join the pool.
        Moving big units in and small ones out turns scattered slack into room for the rest.
        """
        prob = self.prob
        touched: dict[int, tuple[int, int] | None] = {}
        pool: list[tuple[tuple, int]] = []
        for g in sorted({prob.group[i] for i in self.fleet.tasks_on[v]}):
            self._lift(g, touched)
            heapq.heappush(pool, (unit_key(g), g))
        self.fleet.kill(v)
        recent: list[int] = []
        while pool and self.fleet.work < limit:
            key, g = heapq.heappop(pool)
            if self.place_unit(g, skip=v, allow_new=False) is None:
                continue
            ejected = self._eject_insert(
                g, -key[0] * _EJECT_SLACK, v, set(recent), touched, unit_key
            )
            if ejected is None:
                break
            for e in ejected:
                heapq.heappush(pool, (unit_key(e), e))
            recent = [*recent[1 - _TABU :], g]
        else:
            if not pool:
                return True
        self.fleet.revive(v)
        self._restore(sorted(touched.items()))
        return False

    def _lift(self, g: int, touched: dict[int, tuple[int, int] | None]) -> None:
        """Take unit g off its VM, remembering where each member first was (for undo)."""
        for m in self.prob.members[g]:
            touched.setdefault(m, self.where[m])
            if self.where[m] is not None:
                self.take(m)

    def _eject_insert(
        self,
        g: int,
        max_area: float,
        drain: int,
        tabu: set[int],
        touched: dict[int, tuple[int, int] | None],
        unit_key: Callable[[int], tuple],
    ) -> list[int] | None:
        """Insert unit g where it displaces the least area; returns the displaced units.

        Per VM, overlapping units are lifted smallest first until g fits; the cheapest VM wins
        (ties: fewer units, lower index). Returns None, with nothing changed, if no VM works.
        Displaced units are lifted (recorded in ``touched``) for the caller to re-insert.
        """
        prob, fleet = self.prob, self.fleet
        members = prob.members[g]
        lo = self.window(g)[0]
        hi = max(self.window(m)[1] for m in members)
        best: tuple[tuple[float, int, int], list[int]] | None = None
        for u in range(len(fleet.names)):
            if u == drain or not fleet.alive[u]:
                continue
            over = {
                prob.group[j]
                for j, sj in fleet.tasks_on[u].items()
                if sj < hi and sj + prob.d[j] > lo
            }
            units = sorted(
                (unit_key(h), h)
                for h in over
                if h not in tabu and prob.pin[h] < 0 and -unit_key(h)[0] < max_area
            )
            units.reverse()  # smallest area first
            saved: list[tuple[int, tuple[int, int]]] = []
            lifted: list[int] = []
            area = 0.0
            fits = self.try_on(u, members)
            for key, h in units[:_EJECT_UNITS]:
                if fits or area - key[0] >= max_area or (best and area - key[0] >= best[0][0]):
                    break
                saved.extend((m, self.take(m)) for m in prob.members[h])
                lifted.append(h)
                area -= key[0]
                fits = self.try_on(u, members)
            if fits:
                for m in members:
                    self.take(m)
                if best is None or (area, len(lifted), u) < best[0]:
                    best = ((area, len(lifted), u), lifted)
            for m, spot in reversed(saved):
                self.put(m, spot[0], spot[1])
            if best is not None and best[0][0] == 0.0:
                break
        if best is None:
            return None
        (_, _, u), lifted = best
        for h in lifted:
            self._lift(h, touched)
        placed = self.try_on(u, members)
        assert placed, "an insertion found feasible must replay"
        return lifted

    # -- output ------------------------------------------------------------------------------
    def score(self) -> tuple[int, int]:
        return (len(self.reasons), len(self.new_vms()))

    def to_plan(self) -> Plan:
        """Name new VMs, right-size their flavour, and sort everything."""
        fleet = self.fleet
        taken = set(fleet.names[: self.n_existing])
        names = list(fleet.names)
        new_vms: list[tuple[str, str]] = []
        counter = 0
        for v in self.new_vms():
            counter += 1
            while f"new-vm-{counter}" in taken:
                counter += 1
            names[v] = f"new-vm-{counter}"
            peak = fleet.profiles[v].peak(self.prob.horizon)
            chosen = fleet.flavours[v]
            for f in reversed(self.flavours):  # smallest first
                if _fits(peak, _as_vec(f.capacity)):
                    chosen = f
                    break
            new_vms.append((names[v], chosen.name))  # type: ignore[union-attr]
        prob = self.prob
        assignments = sorted(
            (
                Assignment(prob.keys[i], names[w[0]], w[1], w[1] + prob.d[i])
                for i, w in enumerate(self.where)
                if w is not None
            ),
            key=lambda a: (a.vm_name, a.start_s, a.task_key),
        )
        unplaced = [Unplaced(prob.keys[i], r) for i, r in sorted(self.reasons.items())]
        return Plan(tuple(assignments), tuple(new_vms), tuple(unplaced))


def _by_size(flavours: Sequence[Flavour]) -> list[Flavour]:
    """Largest flavour first (capacities normalised per resource), then by name."""
    if not flavours:
        return []
    caps = [_as_vec(f.capacity) for f in flavours]
    ref = [max(c[r] for c in caps) or 1.0 for r in range(3)]
    return sorted(
        flavours, key=lambda f: (-sum(_as_vec(f.capacity)[r] / ref[r] for r in range(3)), f.name)
    )


# ---------------------------------------------------------------------------------------------
# Placement orders
# ---------------------------------------------------------------------------------------------


def _component_stats(prob: _Problem) -> list[tuple]:
    """Per chain component: (index, area, total duration, max demand, slack, root key, mix)."""
    ref = prob.ref_cap
    stats = []
    for c, roots in enumerate(prob.comps):
        tasks = [i for r in roots for i in prob.members[r]]
        dom = [max(prob.q[i][r] / ref[r] for r in range(3)) for i in tasks]
        area = sum(x * prob.d[i] for x, i in zip(dom, tasks, strict=True))
        length = sum(prob.d[i] for i in tasks)
        slack = min(prob.lct[i] - prob.est[i] - prob.d[i] for i in tasks)
        mix = hashlib.blake2b(prob.keys[roots[0]].encode(), digest_size=8).digest()
        stats.append((c, area, length, max(dom), slack, prob.keys[roots[0]], mix))
    return stats


_RULES: list[Callable[[tuple], tuple]] = [
    lambda s: (-s[1], -s[2], s[5]),  # area (dominant resource x duration)
    lambda s: (s[6], s[5]),  # a fixed pseudo-random mix: sizes interleave over time
    lambda s: (s[4], -s[1], s[5]),  # least slack first, then area
    lambda s: (-s[2], -s[1], s[5]),  # duration
    lambda s: (-s[3], -s[1], s[5]),  # dominant demand
]


def _component_orders(prob: _Problem) -> list[list[int]]:
    """Deterministic component orders for the portfolio, strongest first."""
    stats = _component_stats(prob)
    return [[s[0] for s in sorted(stats, key=rule)] for rule in _RULES]


def _exclusive_lanes(prob: _Problem, cap: Vec, max_cells: int = 8192) -> list[list[int]]:
    """Lanes for tasks no two of which can share a VM at one instant, packed by duration.

    Tasks needing more than half of one resource exclude each other, so a VM runs them one
    after another: placing them is 1D bin packing of durations into horizon-long lanes, which
    first fit by area does badly (bimodal 1,000: 47 VMs where 46 lanes hold every heavy task).
    Only free-standing tasks whose window is the whole horizon join, so a lane runs back to
    back from 0 in any order; the resource with the most such task-time is used. Durations are
    counted on a grid of at most ``max_cells`` steps per horizon, rounded up (never overfull);
    a task that no longer fits a lane once rounded is left to the other constructions.
    """
    horizon = prob.horizon
    best: list[int] = []
    for r in range(3):
        big = [
            i
            for i in prob.placeable()
            if prob.pred[i] < 0
            and not prob.succs[i]
            and prob.pin[i] < 0
            and prob.est[i] == 0
            and prob.lct[i] >= horizon
            and prob.q[i][r] * 2 > cap[r] * (1 + _REL_EPS)
        ]
        if sum(prob.d[i] for i in big) > sum(prob.d[i] for i in best):
            best = big
    if len(best) < 2:
        return []
    step = math.gcd(horizon, *(prob.d[i] for i in best))
    step = max(step, -(-horizon // max_cells))
    best = [i for i in best if -(-prob.d[i] // step) <= horizon // step]
    if len(best) < 2:
        return []
    lanes = _pack_lanes([-(-prob.d[i] // step) for i in best], horizon // step)
    return [sorted((best[j] for j in lane), key=lambda i: (-prob.d[i], i)) for lane in lanes]


def _pack_lanes(sizes: list[int], capacity: int) -> list[list[int]]:
    """1D bin packing: item indices grouped into bins whose sizes sum to at most ``capacity``.

    Each bin takes the largest item left, then the subset of the others that fills the rest
    best: a bounded subset sum over the distinct sizes, one numpy pass per copy of a size,
    remembering which size first reached each sum. Deterministic; items fit by assumption.
    """
    left: dict[int, list[int]] = {}
    for j in sorted(range(len(sizes)), key=lambda j: (-sizes[j], j)):
        left.setdefault(sizes[j], []).append(j)
    bins: list[list[int]] = []
    while left:
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
    """Sort key for re-inserting units: largest area first, then key."""
    ref = prob.ref_cap

    def key(root: int) -> tuple:
        area = sum(
            max(prob.q[i][r] / ref[r] for r in range(3)) * prob.d[i] for i in prob.members[root]
        )
        return (-area, prob.keys[root])

    return key


# ---------------------------------------------------------------------------------------------
# Lower bound
# ---------------------------------------------------------------------------------------------


def _dff_family(x: np.ndarray) -> list[np.ndarray]:
    """Dual-feasible transforms of demand fractions x (each keeps 'fits in one VM' valid).

    Boundary cases are rounded towards the smaller value so float noise cannot inflate the bound.
    """
    tol = 1e-9
    out = [x]
    for k in (1, 2, 3, 4):
        y = (k + 1) * x
        near_int = np.abs(y - np.round(y)) < tol
        out.append(np.where(near_int, x, np.floor(y + tol) / k))
    for eps in (0.1, 0.2, 0.3, 0.4, 0.5):
        f = np.where(x > 1 - eps + tol, 1.0, x)
        out.append(np.where(x < eps + tol, 0.0, f))
    return out


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
    dd, e, lc = d.astype(float), est.astype(float), lct.astype(float)
    for start in range(0, lo_w.size, 64):
        a = lo_w[start : start + 64, None]
        b = hi_w[start : start + 64, None]
        overlap = np.minimum(np.minimum(b - a, dd[None, :]), np.minimum(e + dd - a, b - lc + dd))
        np.maximum(overlap, 0.0, out=overlap)
        # The share of the window each task must spend in it, through the same transforms
        # (the identity gives plain energy): see "time lanes" in the module docstring.
        for share in _dff_family(overlap / (b - a)):
            best = max(best, float((share @ fx).max()))  # (W, n) @ (n, 3F)
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


def _bound_arrays(prob: _Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    idx = prob.placeable()
    q = np.array([prob.q[i] for i in idx], dtype=float).reshape(-1, 3)
    d = np.array([prob.d[i] for i in idx], dtype=np.int64)
    est = np.array([prob.est[i] for i in idx], dtype=np.int64)
    lct = np.array([prob.lct[i] for i in idx], dtype=np.int64)
    return q, d, est, lct


# ---------------------------------------------------------------------------------------------
# CP-SAT refinement for small instances
# ---------------------------------------------------------------------------------------------


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
    solver.parameters.max_deterministic_time = _CPSAT_DETERMINISTIC_TIME
    solver.parameters.max_number_of_conflicts = _CPSAT_MAX_CONFLICTS
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


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------


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
        target = _bound_from(*_bound_arrays(prob), flavour_caps[0], prob.horizon)
    orders = _component_orders(prob)
    key_order = list(range(len(prob.comps)))  # independent of the caller's order
    # (order, mode) in decreasing usefulness over the benchmark families; the budget decides
    # how many run: "edge" wins on tight horizons, "fill" on independent tasks.
    runs = [(0, "edge"), (0, "fill"), (1, "plain"), (2, "edge"), (0, "plain"), (2, "fill")]
    runs += [(3, "edge"), (3, "plain"), (1, "fill"), (4, "plain"), (4, "fill"), (-1, "plain")]
    lanes = _exclusive_lanes(prob, flavour_caps[0]) if simple and n else []
    if lanes and len(lanes) <= limits.max_vms:
        runs.insert(0, (0, "lanes"))
    congestion = _congestion(prob)
    unit_key = _unit_key(prob)
    best: _Schedule | None = None
    spent = 0
    for rule, mode in runs:
        if best is not None and (spent >= _WORK_BUDGET or best.score()[1] <= target):
            break
        if mode == "fill" and len(flavours) != 1:
            continue
        sched = _Schedule(prob, flavours, existing_vms, limits)
        sched.congestion = congestion if mode == "edge" else None
        order = orders[rule] if rule >= 0 else key_order
        if mode == "lanes":
            sched.construct_lanes(lanes, order)
        elif mode == "fill":
            sched.construct_fill(order)
        else:
            sched.construct(order)
        spent += sched.fleet.work
        if best is None or sched.score() < best.score():
            best = sched
    assert best is not None
    if best.score()[1] > target:
        best.improve(max(_WORK_BUDGET - spent, _WORK_BUDGET // 10), target, unit_key)
    if simple and n <= _CPSAT_MAX_TASKS and len(best.reasons) == len(prob.reasons):
        vms = best.score()[1]
        while vms > target:
            spots = _cpsat_fewer(best, flavours[0], vms - 1)
            rebuilt = _rebuild(prob, flavours[0], limits, spots, vms - 1) if spots else None
            if rebuilt is None:
                break
            best, vms = rebuilt, rebuilt.score()[1]
    return best.to_plan()


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
    return _bound_from(*_bound_arrays(prob), _as_vec(flavour.capacity), prob.horizon)
