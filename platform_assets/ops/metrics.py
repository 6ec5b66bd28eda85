"""Run metrics (`ops.run_metrics`): what each ingestion run read, wrote and rejected, per source.

One row per (run, job, source). They are shown as run/asset metadata (`RunMetrics.as_metadata`)
and stored, so a check (`ops.checks.usual_level_check`) can compare a run's figures with the
mean of the last 7 successful runs of the same job and source, and `last_success_end` gives
the incremental loop where the next run starts.

Example, in an asset (with the catalog and dry run, see ops.catalog / ops.dry_run)::

    from platform_assets.ops.metrics import RunMetrics, record_run_metrics

    metrics = RunMetrics.start(context.job_name, "naf", context.run_id, window=window)
    metrics.items_read += len(files)
    metrics.rows_read += rows_in; metrics.rows_written += inserted; metrics.rows_rejected += bad
    metrics.finish()
    with warehouse.connect() as conn:
        record_run_metrics(conn, metrics, dry_run=dry.enabled)
    return MaterializeResult(metadata={**row_count(total), **metrics.as_metadata()})

and next to the asset: `usual_level_check(POSITIONS, job="positions_job", source="naf",
figures=("rows_written",), fraction=0.5)`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from platform_assets.ops.incremental import Window

if TYPE_CHECKING:
    import psycopg

FIGURES: tuple[str, ...] = (
    "items_read",
    "items_written",
    "items_rejected",
    "rows_read",
    "rows_written",
    "rows_rejected",
    "duration_seconds",
)
HISTORY_RUNS = 7
RunStatus = Literal["success", "failure", "partial"]


@dataclass
class RunMetrics:
    """The counters of one run for one job and source; add to them as the run goes."""

    job: str
    source: str
    run_id: str
    items_read: int = 0
    items_written: int = 0
    items_rejected: int = 0
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    duration_seconds: float = 0.0
    status: RunStatus = "success"
    window: Window | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    _clock: float = field(default_factory=time.perf_counter, repr=False)

    @classmethod
    def start(
        cls, job: str, source: str, run_id: str, *, window: Window | None = None
    ) -> RunMetrics:
        """Start counting now."""
        return cls(job=job, source=source, run_id=run_id, window=window)

    def finish(self, status: RunStatus = "success") -> RunMetrics:
        """Stop the clock (call once the run's work is done)."""
        self.duration_seconds = time.perf_counter() - self._clock
        self.finished_at = self.started_at + timedelta(seconds=self.duration_seconds)
        self.status = status
        return self

    def figures(self) -> dict[str, float]:
        """The compared figures, by name."""
        return {name: float(getattr(self, name)) for name in FIGURES}

    def as_metadata(self, prefix: str = "") -> dict[str, Any]:
        """Run/asset metadata (plain numbers, so the UI plots them across runs)."""
        meta: dict[str, Any] = {
            f"{prefix}{name}": getattr(self, name) for name in FIGURES if name != "duration_seconds"
        }
        meta[f"{prefix}duration_seconds"] = round(self.duration_seconds, 3)
        if self.window is not None:
            meta.update({f"{prefix}{k}": v for k, v in self.window.as_metadata().items()})
        return meta


def record_run_metrics(
    conn: psycopg.Connection, metrics: RunMetrics, *, dry_run: bool = False
) -> bool:
    """Store (or replace, on a retried run) the row of this run, job and source, in the caller's
    transaction. Under dry run nothing is written (False is returned): a dry run is not a usual level.
    """
    if dry_run:
        return False
    if metrics.finished_at is None:
        metrics.finish(metrics.status)
    window = metrics.window
    conn.execute(
        """
        INSERT INTO ops.run_metrics (run_id, job, source, status, items_read, items_written,
            items_rejected, rows_read, rows_written, rows_rejected, duration_seconds,
            window_start, window_end, started_at, finished_at, details)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
        ON CONFLICT (run_id, job, source) DO UPDATE SET
            status = EXCLUDED.status, items_read = EXCLUDED.items_read,
            items_written = EXCLUDED.items_written, items_rejected = EXCLUDED.items_rejected,
            rows_read = EXCLUDED.rows_read, rows_written = EXCLUDED.rows_written,
            rows_rejected = EXCLUDED.rows_rejected, duration_seconds = EXCLUDED.duration_seconds,
            window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            details = EXCLUDED.details
        """,
        (
            metrics.run_id,
            metrics.job,
            metrics.source,
            metrics.status,
            metrics.items_read,
            metrics.items_written,
            metrics.items_rejected,
            metrics.rows_read,
            metrics.rows_written,
            metrics.rows_rejected,
            metrics.duration_seconds,
            window.start if window else None,
            window.end if window else None,
            metrics.started_at,
            metrics.finished_at,
            json.dumps(metrics.details, default=str),
        ),
    )
    return True


def last_success_end(conn: psycopg.Connection, job: str, source: str = "") -> datetime | None:
    """Where the last successful run of this job and source stopped (its window end)."""
    row = conn.execute(
        "SELECT max(window_end) FROM ops.run_metrics "
        "WHERE job = %s AND source = %s AND status = 'success'",
        (job, source),
    ).fetchone()
    return row[0] if row else None


def latest_and_history(
    conn: psycopg.Connection, job: str, source: str = "", runs: int = HISTORY_RUNS
) -> tuple[dict[str, float] | None, list[dict[str, float]]]:
    """The figures of the latest successful run, and of up to `runs` successful runs before it."""
    rows = conn.execute(
        f"SELECT {', '.join(FIGURES)} FROM ops.run_metrics "
        "WHERE job = %s AND source = %s AND status = 'success' "
        "ORDER BY finished_at DESC, started_at DESC LIMIT %s",
        (job, source, runs + 1),
    ).fetchall()
    figures = [dict(zip(FIGURES, map(float, row), strict=True)) for row in rows]
    if not figures:
        return None, []
    return figures[0], figures[1:]


@dataclass(frozen=True)
class Shortfall:
    """A figure below `fraction` of its usual level."""

    figure: str
    value: float
    usual: float
    fraction: float

    def __str__(self) -> str:
        share = self.value / self.usual if self.usual else 0.0
        return (
            f"{self.figure} = {self.value:g} is {share:.0%} of its usual {self.usual:g} "
            f"(warn below {self.fraction:.0%})"
        )


def usual_levels(history: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each figure over the history runs."""
    if not history:
        return {}
    names = set().union(*(h.keys() for h in history))
    return {
        name: sum(float(h.get(name, 0.0)) for h in history) / len(history) for name in sorted(names)
    }


def below_usual(
    today: Mapping[str, float],
    history: Sequence[Mapping[str, float]],
    fraction: float,
    figures: Sequence[str],
) -> list[Shortfall]:
    """The figures of `today` below `fraction` of their mean over `history` (none without
    history, and none where the usual level is zero)."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction {fraction} must be between 0 and 1")
    usual = usual_levels(history)
    shortfalls = []
    for name in figures:
        level = usual.get(name, 0.0)
        value = float(today.get(name, 0.0))
        if level > 0 and value < fraction * level:
            shortfalls.append(Shortfall(name, value, level, fraction))
    return shortfalls
