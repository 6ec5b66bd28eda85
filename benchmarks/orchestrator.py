"""Benchmark of the orchestrator planner against first fit and the lower bound.

Run: ``/work/main/.venv/bin/python benchmarks/orchestrator.py [--sizes 100 1000 10000]``.
Writes benchmarks/results/orchestrator.json and prints a table. Instances come from fixed seeds,
so two runs plan the same instances; only the timings move. Never run as a test.

Families (one flavour: 16 CPU, 64 GB RAM, 400 GB storage; horizon 8 h unless said):
- uniform: independent uniform CPU, RAM, storage and 5-90 min durations, all ready at 0;
- bimodal: 20 % heavy (8-12 CPU, 24-48 GB, 1-3 h), 80 % light (0.5-2 CPU, 1-6 GB, 5-30 min);
- chains: chains of 3-12 steps (half of the links same-VM), released over the first two hours;
- tight: 2 h horizon, 30-100 min tasks released so most must overlap, some two-step chains.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from platform_assets.processing.planner import (  # noqa: E402
    Flavour,
    Limits,
    Plan,
    Resources,
    TaskRequest,
    first_fit,
    lower_bound,
    plan,
)

FLAVOUR = Flavour("m16", Resources(cpu=16.0, ram_mb=64 * 1024, storage_gb=400.0))
FAMILIES = ("uniform", "bimodal", "chains", "tight")
SEEDS = {"uniform": 11, "bimodal": 23, "chains": 37, "tight": 41}
RESULTS = Path(__file__).resolve().parent / "results" / "orchestrator.json"


def _task(
    key: str, cpu: float, ram_gb: float, sto: float, minutes: int, **kw: object
) -> TaskRequest:
    return TaskRequest(
        key=key,
        cpu=round(float(cpu), 2),
        ram_mb=int(ram_gb * 1024),
        storage_gb=round(float(sto), 1),
        duration_s=int(minutes) * 60,
        **kw,  # type: ignore[arg-type]
    )


def generate(family: str, n: int) -> tuple[list[TaskRequest], Limits]:
    """A fixed instance of the family with n tasks (seeded by family and size)."""
    rng = np.random.default_rng([SEEDS[family], n])
    many = Limits(max_vms=100_000, horizon_s=8 * 3600)
    tasks: list[TaskRequest] = []
    if family == "uniform":
        for k in range(n):
            tasks.append(
                _task(
                    f"u{k:05d}",
                    rng.integers(1, 9) * 0.5,
                    rng.uniform(1, 16),
                    rng.uniform(5, 60),
                    int(rng.integers(5, 91)),
                )
            )
        return tasks, many
    if family == "bimodal":
        for k in range(n):
            if rng.random() < 0.2:
                tasks.append(
                    _task(
                        f"b{k:05d}",
                        rng.uniform(8, 12),
                        rng.uniform(24, 48),
                        rng.uniform(50, 150),
                        int(rng.integers(60, 181)),
                    )
                )
            else:
                tasks.append(
                    _task(
                        f"b{k:05d}",
                        rng.uniform(0.5, 2),
                        rng.uniform(1, 6),
                        rng.uniform(2, 20),
                        int(rng.integers(5, 31)),
                    )
                )
        return tasks, many
    if family == "chains":
        k = 0
        while k < n:
            length = min(int(rng.integers(3, 13)), n - k)
            release = int(rng.integers(0, 121)) * 60
            prev: str | None = None
            for step in range(length):
                key = f"c{k:05d}"
                tasks.append(
                    _task(
                        key,
                        rng.integers(1, 9) * 0.5,
                        rng.uniform(1, 16),
                        rng.uniform(5, 60),
                        int(rng.integers(5, 41)),
                        preceding=prev,
                        same_vm_as_preceding=bool(prev is not None and rng.random() < 0.5),
                        earliest_start_s=release if step == 0 else 0,
                    )
                )
                prev = key
                k += 1
        return tasks, many
    if family == "tight":
        horizon = 2 * 3600
        k = 0
        while k < n:
            minutes = int(rng.integers(30, 101))
            release = int(rng.integers(0, (120 - minutes) // 2 + 1)) * 60
            if k + 1 < n and rng.random() < 0.15:
                first = int(rng.integers(15, 46))
                second = int(rng.integers(15, 120 - first - release // 60 + 1))
                tasks.append(
                    _task(
                        f"t{k:05d}",
                        rng.uniform(1, 4),
                        rng.uniform(2, 16),
                        rng.uniform(5, 60),
                        first,
                        earliest_start_s=release,
                    )
                )
                tasks.append(
                    _task(
                        f"t{k + 1:05d}",
                        rng.uniform(1, 4),
                        rng.uniform(2, 16),
                        rng.uniform(5, 60),
                        second,
                        preceding=f"t{k:05d}",
                        same_vm_as_preceding=bool(rng.random() < 0.5),
                    )
                )
                k += 2
                continue
            tasks.append(
                _task(
                    f"t{k:05d}",
                    rng.uniform(0.5, 4),
                    rng.uniform(1, 16),
                    rng.uniform(5, 60),
                    minutes,
                    earliest_start_s=release,
                )
            )
            k += 1
        return tasks, Limits(max_vms=100_000, horizon_s=horizon)
    raise ValueError(f"unknown family {family!r}")


def _vms(p: Plan) -> int:
    return len(p.new_vms)


def area_bound(tasks: list[TaskRequest], limits: Limits) -> int:
    """The plain bound max_r ceil(sum(demand_r x duration) / (capacity_r x horizon)), for contrast."""
    cap = FLAVOUR.capacity
    sums = [0.0, 0.0, 0.0]
    for t in tasks:
        sums[0] += t.cpu * t.duration_s / cap.cpu
        sums[1] += t.ram_mb * t.duration_s / cap.ram_mb
        sums[2] += t.storage_gb * t.duration_s / cap.storage_gb
    return max(1, int(np.ceil(max(sums) / limits.horizon_s - 1e-9)))


def run(sizes: list[int]) -> dict[str, Any]:
    """Plan every family and size; return the JSON document."""
    rows: list[dict[str, Any]] = []
    for family in FAMILIES:
        for n in sizes:
            tasks, limits = generate(family, n)
            t0 = time.perf_counter()
            ours = plan(tasks, [FLAVOUR], [], limits)
            t_plan = time.perf_counter() - t0
            t0 = time.perf_counter()
            base = first_fit(tasks, FLAVOUR, limits)
            t_ff = time.perf_counter() - t0
            t0 = time.perf_counter()
            lb = lower_bound(tasks, FLAVOUR, limits)
            t_lb = time.perf_counter() - t0
            row = {
                "family": family,
                "tasks": n,
                "lower_bound": lb,
                "area_bound": area_bound(tasks, limits),
                "planner_vms": _vms(ours),
                "first_fit_vms": _vms(base),
                "planner_ratio": round(_vms(ours) / lb, 4) if lb else None,
                "first_fit_ratio": round(_vms(base) / lb, 4) if lb else None,
                "planner_unplaced": len(ours.unplaced),
                "first_fit_unplaced": len(base.unplaced),
                "planner_seconds": round(t_plan, 3),
                "first_fit_seconds": round(t_ff, 3),
                "lower_bound_seconds": round(t_lb, 3),
            }
            rows.append(row)
            print(
                f"{family:8s} {n:6d}  lb {lb:4d}  planner {row['planner_vms']:4d} "
                f"({row['planner_ratio']})  first-fit {row['first_fit_vms']:4d} "
                f"({row['first_fit_ratio']})  {t_plan:6.2f} s",
                flush=True,
            )
    per_family: dict[str, dict[str, float]] = {}
    for family in FAMILIES:
        mine = [r for r in rows if r["family"] == family]
        per_family[family] = {
            "planner_mean_ratio": round(statistics.mean(r["planner_ratio"] for r in mine), 4),
            "first_fit_mean_ratio": round(statistics.mean(r["first_fit_ratio"] for r in mine), 4),
        }
    overall = {
        "planner_mean_ratio": round(statistics.mean(r["planner_ratio"] for r in rows), 4),
        "first_fit_mean_ratio": round(statistics.mean(r["first_fit_ratio"] for r in rows), 4),
        "planner_never_worse_than_first_fit": all(
            r["planner_vms"] <= r["first_fit_vms"] for r in rows
        ),
        "max_planner_seconds": max(r["planner_seconds"] for r in rows),
    }
    return {
        "flavour": {"name": FLAVOUR.name, "cpu": 16, "ram_mb": 65536, "storage_gb": 400},
        "machine": {
            "python": platform.python_version(),
            "cpus": _cpus(),
            # Shared machine: other work runs beside the benchmark, so timings are noisy.
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "instances": rows,
        "per_family": per_family,
        "overall": overall,
    }


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def main() -> None:
    """Run the benchmark, print the summary, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    doc = run(args.sizes)
    print()
    print(f"{'family':8s} {'planner':>8s} {'first-fit':>9s}   (mean VMs / lower bound)")
    for family, stats in doc["per_family"].items():
        print(
            f"{family:8s} {stats['planner_mean_ratio']:8.4f} {stats['first_fit_mean_ratio']:9.4f}"
        )
    overall = doc["overall"]
    print(
        f"{'overall':8s} {overall['planner_mean_ratio']:8.4f} "
        f"{overall['first_fit_mean_ratio']:9.4f}"
    )
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
