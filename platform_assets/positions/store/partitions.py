"""Daily partitions of ``positions.positions``: created ahead and on demand, dropped by retention."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from platform_assets.positions.store.adbc import execute, rows, scalar

PARTITION_NAME = re.compile(r"^positions_(\d{8})$")


def partition_days(conn: Any) -> list[date]:
    """Days that have a partition of positions.positions, oldest first."""
    names = rows(
        conn,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'positions.positions'::regclass",
    )
    days = []
    for (name,) in names:
        match = PARTITION_NAME.match(name)
        if match:
            days.append(datetime.strptime(match.group(1), "%Y%m%d").date())
    return sorted(days)


def ensure_partitions(conn: Any, days: Iterable[date]) -> list[str]:
    """Create the daily partitions of these days when missing; their names."""
    return [
        str(scalar(conn, "SELECT positions.ensure_partition($1::date)", [day.isoformat()]))
        for day in sorted(set(days))
    ]


def ensure_partitions_ahead(conn: Any, today: date, days_ahead: int) -> list[str]:
    """Partitions from today to ``days_ahead`` days after it (the scheduled job's work)."""
    return ensure_partitions(conn, (today + timedelta(days=n) for n in range(days_ahead + 1)))


def drop_partitions_before(conn: Any, cutoff: date) -> list[date]:
    """Detach and drop every daily partition of a day before ``cutoff``; the days dropped.

    Whole partitions go (no DELETE, no bloat). ``positions.last_positions`` and the track
    states are separate tables: a vessel whose positions were all dropped keeps its last one.
    """
    dropped = []
    for day in partition_days(conn):
        if day >= cutoff:
            break
        name = f"positions_{day:%Y%m%d}"
        execute(conn, f"ALTER TABLE positions.positions DETACH PARTITION positions.{name}")
        execute(conn, f"DROP TABLE positions.{name}")
        dropped.append(day)
    return dropped


def apply_retention(conn: Any, today: date, retention_days: int) -> list[date]:
    """Drop the partitions of days older than ``retention_days`` before ``today``."""
    if retention_days < 1:
        raise ValueError(f"POSITIONS_RETENTION_DAYS must be >= 1, got {retention_days}")
    return drop_partitions_before(conn, today - timedelta(days=retention_days))
