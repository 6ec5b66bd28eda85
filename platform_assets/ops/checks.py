"""Asset checks every domain can attach: a run's figures against their usual level.

`usual_level_check(POSITIONS, job="positions_job", source="naf")` builds a check that reads
`ops.run_metrics` (platform_assets/ops/metrics.py): the latest successful run of that job and
source against the mean of the 7 successful runs before it; it warns (never blocks) when a figure
falls below `fraction` of its mean, e.g. half as many positions as usual.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)

from platform_assets.ops.metrics import (
    FIGURES,
    HISTORY_RUNS,
    below_usual,
    latest_and_history,
    usual_levels,
)
from resources.warehouse import WarehouseResource


def _check_name(job: str, source: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"usual_level_{job}_{source}".rstrip("_"))


def usual_level_check(
    asset: AssetKey | str | Sequence[str],
    *,
    job: str,
    source: str = "",
    figures: Sequence[str] = ("rows_written",),
    fraction: float = 0.5,
    runs: int = HISTORY_RUNS,
    name: str | None = None,
) -> AssetChecksDefinition:
    """A WARN check on `asset`: each of `figures` of the latest run of (job, source) must be at
    least `fraction` of its mean over the `runs` runs before it (no verdict without history)."""
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        raise ValueError(f"unknown run metric(s) {unknown}; use some of {list(FIGURES)}")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction {fraction} must be between 0 and 1")
    key = asset if isinstance(asset, AssetKey) else AssetKey(asset)
    label = f"{job}/{source}" if source else job

    @asset_check(
        asset=key,
        name=name or _check_name(job, source),
        description=f"{', '.join(figures)} of the latest {label} run at least {fraction:.0%} of "
        f"the mean of the {runs} runs before it (ops.run_metrics)",
        blocking=False,
    )
    def _usual_level(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as conn:
            latest, history = latest_and_history(conn, job, source, runs)
        if latest is None or not history:
            return AssetCheckResult(
                passed=True,
                severity=AssetCheckSeverity.WARN,
                description=f"not enough history for {label} yet",
                metadata={"history_runs": len(history)},
            )
        shortfalls = below_usual(latest, history, fraction, figures)
        usual = usual_levels(history)
        return AssetCheckResult(
            passed=not shortfalls,
            severity=AssetCheckSeverity.WARN,
            description="; ".join(str(s) for s in shortfalls) or f"{label} at its usual level",
            metadata={
                "history_runs": len(history),
                "fraction": fraction,
                **{f"latest/{f}": latest[f] for f in figures},
                **{f"usual/{f}": round(usual.get(f, 0.0), 3) for f in figures},
                "below": MetadataValue.json([s.figure for s in shortfalls]),
            },
        )

    return _usual_level
