"""Improvement (step 4): empty new VMs by re-insertion, then by ejection chains.

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

"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from platform_assets.processing.planner.constructions import _Constructions

# Ejection chains (``_Schedule.drain``): work per attempt to empty a VM, least-loaded VMs tried
# per round, most units displaced per insertion, how much bigger than the inserted unit a
# displaced one may be (in area), and how many recent insertions may not be displaced again.
_DRAIN_WORK = 3_000_000
_DRAIN_TRIES = 3
_EJECT_UNITS = 3
_EJECT_SLACK = 4.0
_TABU = 10


class _Schedule(_Constructions):
    """A schedule with every stage: constructions plus improvement."""

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
            fleet.work += 8 + 6 * len(fleet.tasks_on[u])  # the scan below, in work units
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
                # a unit may be partly placed (a same-VM unit keeps what fits): lift what is
                saved.extend(
                    (m, self.take(m)) for m in prob.members[h] if self.where[m] is not None
                )
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
