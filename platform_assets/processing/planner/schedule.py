"""One plan under construction: the fleet, where each task is, and why others are not.

``_ScheduleBase`` holds the moves every stage shares (windows, put/take, placing a same-VM unit
first fit, output); constructions.py and improvement.py add the stages on top of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from platform_assets.processing.planner.model import (
    Assignment,
    ExistingVm,
    Flavour,
    Limits,
    Plan,
    Unplaced,
    _as_vec,
    _busy_slots,
    _capacity_reason,
    _fits,
)
from platform_assets.processing.planner.preprocessing import _Problem
from platform_assets.processing.planner.profiles import _Fleet


class _ScheduleBase:
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
                unit = prob.unit  # divides every time of the input (see _time_unit)
                self.fleet.load(v, slot.start_s // unit, slot.end_s // unit, _as_vec(slot.load))

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
                f"{prob.pred_key[root]}) within the horizon ({prob.horizon * prob.unit} s)"
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
                    f"does not fit on one VM with its same-VM chain within the horizon ({prob.horizon * prob.unit} s)",
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

    def new_vms(self) -> list[int]:
        return [v for v in range(self.n_existing, len(self.fleet.names)) if self.fleet.alive[v]]

    def vm_load(self, v: int) -> float:
        prob = self.prob
        ref = prob.ref_cap
        return sum(
            max(prob.q[i][r] / ref[r] for r in range(3)) * prob.d[i] for i in self.fleet.tasks_on[v]
        )

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
        unit = prob.unit
        assignments = sorted(
            (
                Assignment(prob.keys[i], names[w[0]], w[1] * unit, (w[1] + prob.d[i]) * unit)
                for i, w in enumerate(self.where)
                if w is not None
            ),
            key=lambda a: (a.vm_name, a.start_s, a.task_key),
        )
        unplaced = sorted(
            (Unplaced(prob.keys[i], r) for i, r in self.reasons.items()), key=lambda u: u.task_key
        )
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
