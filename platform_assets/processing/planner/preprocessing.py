"""Preprocessing (exact), step 1 of the planner.

1. Preprocessing (exact): unknown or cyclic predecessors, tasks no flavour can hold and tasks
   that cannot end within the horizon (their chain pushes the earliest start) are unplaced with
   a reason; successors of an unplaced task follow it. Each remaining task gets a window
   ``[est, lct]``: ``est`` from the chain before it, ``lct`` leaves room for the chain after it,
   so a task placed inside its window never strands its successors.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from platform_assets.processing.planner.model import (
    ExistingVm,
    Limits,
    PlanningInputError,
    TaskRequest,
    Vec,
    _as_vec,
    _busy_slots,
    _capacity_reason,
    _check_number,
    _fits,
    _horizon_reason,
)


@dataclass
class _Problem:
    """Tasks in canonical order with windows, chain structure and the reasons found up front.

    Times (``d``, ``est``, ``lct``, ``horizon``) are in units of ``unit`` seconds. ``sig`` is
    each task's content digest (its profile, window and the chain after it): equal digests mean
    interchangeable tasks, which is what lets renaming never change a plan's VM count.
    """

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
    unit: int = 1  # seconds per time step
    sig: list[bytes] = field(default_factory=list)

    def placeable(self) -> list[int]:
        """Indices not rejected during preprocessing."""
        return [i for i in range(len(self.keys)) if i not in self.reasons]


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
    by_key = sorted(tasks, key=lambda t: t.key)
    index: dict[str, int] = {}
    for i, t in enumerate(by_key):
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

    # One time unit for everything: plans do not depend on whether times come in seconds or in
    # minutes expressed in seconds (the filter's buckets and the lanes' grid are then the same).
    unit = _time_unit(by_key, existing, horizon)
    horizon //= unit
    started = {k: (v, end // unit) for k, (v, end) in started.items()}
    ordered, sig = _canonical_order(by_key, started, unit)
    index = {t.key: i for i, t in enumerate(ordered)}

    n = len(ordered)
    keys = [t.key for t in ordered]
    q = [(float(t.cpu), float(t.ram_mb), float(t.storage_gb)) for t in ordered]
    d = [int(t.duration_s) // unit for t in ordered]
    est = [int(t.earliest_start_s) // unit for t in ordered]
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
            reasons[i] = _horizon_reason(est[i] * unit, d[i] * unit, horizon * unit)
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
        unit=unit,
        sig=sig,
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


def _time_unit(tasks: Sequence[TaskRequest], existing: Sequence[ExistingVm], horizon: int) -> int:
    """Greatest common divisor of every time of the input (durations, releases, busy slots)."""
    g = horizon
    for t in tasks:
        g = math.gcd(g, int(t.duration_s), int(t.earliest_start_s))
    for vm in existing:
        for slot in _busy_slots(vm):
            g = math.gcd(g, abs(int(slot.start_s)), abs(int(slot.end_s)))
    return max(g, 1)


def _own(t: TaskRequest, started: dict[str, tuple[int, int]], unit: int, known: bool) -> tuple:
    """What makes a task what it is, without its key (times in ``unit``)."""
    anchor: tuple = ()
    if t.preceding is not None and known:
        anchor = ("task",)
    elif t.preceding is not None:
        anchor = ("started", *started[t.preceding]) if t.preceding in started else ("unknown",)
    return (
        float(t.cpu),
        float(t.ram_mb),
        float(t.storage_gb),
        int(t.duration_s) // unit,
        int(t.earliest_start_s) // unit,
        bool(t.same_vm_as_preceding) and t.preceding is not None,
        anchor,
    )


def _tree_digests(
    tasks: Sequence[TaskRequest], started: dict[str, tuple[int, int]], unit: int
) -> tuple[dict[str, bytes], dict[str, list[str]], list[str]]:
    """Digest of each task with the chain tree after it; children lists; roots (key order)."""
    by_key = {t.key: t for t in tasks}
    children: dict[str, list[str]] = {}
    roots: list[str] = []
    for t in tasks:
        if t.preceding is not None and t.preceding in by_key:
            children.setdefault(t.preceding, []).append(t.key)
        else:
            roots.append(t.key)
    digest: dict[str, bytes] = {}
    for r in roots:
        stack = [(r, False)]
        while stack:
            k, done = stack.pop()
            if not done:
                stack.append((k, True))
                stack.extend((c, False) for c in children.get(k, ()))
                continue
            t = by_key[k]
            kids = sorted(digest[c] for c in children.get(k, ()))
            own = _own(t, started, unit, t.preceding in by_key)
            digest[k] = hashlib.blake2b(repr((own, kids)).encode(), digest_size=16).digest()
    for t in tasks:  # tasks on a cycle: their content alone
        if t.key not in digest:
            own = _own(t, started, unit, True)
            digest[t.key] = hashlib.blake2b(repr((own, ())).encode(), digest_size=16).digest()
    return digest, children, roots


def _canonical_order(
    tasks: Sequence[TaskRequest], started: dict[str, tuple[int, int]], unit: int
) -> tuple[list[TaskRequest], list[bytes]]:
    """Tasks numbered by content and chain structure, each chain tree in preorder.

    Keys only order tasks whose digests are equal, i.e. interchangeable ones, so renaming tasks
    or splitting a catalogue into other ids permutes identical tasks and nothing else.
    """
    digest, children, roots = _tree_digests(tasks, started, unit)
    by_key = {t.key: t for t in tasks}
    out: list[TaskRequest] = []
    for r in sorted(roots, key=lambda k: (digest[k], k)):
        stack = [r]
        while stack:
            k = stack.pop()
            out.append(by_key[k])
            stack.extend(sorted(children.get(k, ()), key=lambda c: (digest[c], c), reverse=True))
    seen = {t.key for t in out}
    out.extend(t for t in tasks if t.key not in seen)  # cycles, by key
    return out, [digest[t.key] for t in out]
