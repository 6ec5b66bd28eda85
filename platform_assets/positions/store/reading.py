"""Reads of stored positions and of the reference tables the positions domain uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from platform_assets.positions.store.adbc import frame, scalar
from platform_assets.positions.store.schema import POSITION_COLUMNS


def read_anchorages(conn: Any) -> pd.DataFrame:
    """The reference domain's anchorage cells (``h3``, ``port_locode``)."""
    return frame(conn, "SELECT h3, port_locode FROM reference.anchorages ORDER BY h3")


def read_vessels(conn: Any) -> pd.DataFrame:
    """The vessel register's identity columns."""
    return frame(
        conn,
        "SELECT vessel_id, cfr, ircs, external_immatriculation, vessel_name, flag_state "
        "FROM reference.vessels",
    )


def _window(start: datetime | None, end: datetime | None) -> tuple[str, list[str]]:
    """A WHERE clause on ``datetime_utc`` in [start, end) and its parameters."""
    where, params = [], []
    if start is not None:
        params.append(start.isoformat())
        where.append(f"datetime_utc >= ${len(params)}::timestamptz")
    if end is not None:
        params.append(end.isoformat())
        where.append(f"datetime_utc < ${len(params)}::timestamptz")
    return (f" WHERE {' AND '.join(where)}" if where else ""), params


def read_positions(
    conn: Any, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Stored positions in [start, end) (all when unbounded), ordered by track, time, id."""
    clause, params = _window(start, end)
    return frame(
        conn,
        f"SELECT {', '.join(POSITION_COLUMNS)} FROM positions.positions{clause} "
        "ORDER BY track_id, datetime_utc, id",
        params or None,
    )


def count_positions(conn: Any, start: datetime | None = None, end: datetime | None = None) -> int:
    """Rows of positions.positions in [start, end)."""
    clause, params = _window(start, end)
    return int(scalar(conn, f"SELECT count(*) FROM positions.positions{clause}", params or None))
