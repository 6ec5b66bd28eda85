"""Public model of the VM planner, and the small helpers every stage shares.

Capacities are compared with a relative tolerance of 1e-9 (CPU and storage are floats).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

_REL_EPS = 1e-9


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


Vec = tuple[float, float, float]


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


def _side_by_side(q: Vec, cap: Vec, rel_tol: float) -> int:
    """How many tasks of demand q run at once on capacity cap (0 if q uses nothing)."""
    return min((int(cap[r] * (1 + rel_tol) // q[r]) for r in range(3) if q[r] > 0), default=0)


def _as_vec(r: Resources) -> Vec:
    return (float(r.cpu), float(r.ram_mb), float(r.storage_gb))


def _check_number(value: float, what: str, key: str) -> None:
    if not math.isfinite(value) or value < 0:
        raise PlanningInputError(f"{what} of {key!r} must be a finite number >= 0, got {value!r}")


def _busy_slots(vm: ExistingVm) -> list[BusySlot]:
    return [b if isinstance(b, BusySlot) else BusySlot(*b) for b in vm.busy]
