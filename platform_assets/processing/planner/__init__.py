"""Pure, deterministic placement of processing tasks onto virtual machines.

Problem: every task needs CPU, RAM and storage for ``duration_s`` seconds inside ``[0, horizon)``;
a VM's tasks must fit its flavour at every instant; chained tasks start after their predecessor
ends (on the same VM when they share data); started tasks are fixed load on their VM. Objective:
as few new VMs as possible; every task is either assigned or unplaced with a reason naming the
resource or limit.

Why heuristics first, and CP-SAT only for small inputs: a 10,000-task, ~100-VM model has a
million optional intervals; CP-SAT finds nothing useful in seconds, and under a wall-clock limit
its answer would depend on machine load. The stages, one module each:

1. ``preprocessing``: validation, chain windows, reasons for what no plan can place; times are
   divided by their greatest common divisor and tasks numbered by content, not by key;
2. ``constructions`` (over ``profiles`` and ``schedule``): serial first fit, "edge", "fill",
   "lanes";
3. ``portfolio``: orders x constructions under a deterministic work budget, first fit as floor;
4. ``improvement``: emptying new VMs by re-insertion and ejection chains;
5. ``exact``: CP-SAT for single-flavour inputs of <= 100 tasks or a few VMs (ortools imported
   only there);
   ``bounds``: the lower bound, with ``patterns`` and ``window_patterns`` (configuration LPs
   over VM patterns, by column generation with GLOP) for catalogues of a few task shapes.

Invariance: no clock, hash() or randomness is used. Tasks are numbered by their content and
chain structure (profile, window, successors), keys only order identical tasks, so the same
input in any order gives the same plan and renaming tasks never changes the VM count. All times
are divided by their gcd first, so the plan does not depend on the time unit.
"""

from platform_assets.processing.planner.model import (
    Assignment,
    BusySlot,
    ExistingVm,
    Flavour,
    Limits,
    Plan,
    PlanningInputError,
    Resources,
    TaskRequest,
    Unplaced,
)
from platform_assets.processing.planner.portfolio import first_fit, lower_bound, plan

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
