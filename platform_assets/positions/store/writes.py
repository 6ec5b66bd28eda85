"""Writing enriched rows: new rows by binary COPY straight into ``positions.positions`` (or, as
a fallback, through a staging table and ``INSERT ... ON CONFLICT DO NOTHING``), revised rows in
place.

The direct COPY is safe because the loader holds the ingestion lock and has already dropped every
row whose natural key is stored (``load.load_positions``): nothing it copies can collide. The
unique natural key is still the last guard: should a row have been stored behind the lock's back
(a manual INSERT), the COPY fails with ``NaturalKeyConflict`` and the caller loads the batch again
in a new transaction through the staging table, which skips such rows.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from platform_assets.positions.store.adbc import copy_into, execute
from platform_assets.positions.store.partitions import ensure_partitions, partition_days
from platform_assets.positions.store.schema import (
    ENRICHED_COLUMNS,
    POSITION_COLUMNS,
    insert_frame,
)

_US_PER_DAY = 86_400_000_000
_EPOCH = date(1970, 1, 1)


UNIQUE_VIOLATION = "23505"


class NaturalKeyConflict(RuntimeError):
    """A row of a direct COPY was already stored; the transaction is aborted: roll it back and
    load the batch again with ``direct=False``."""


def days_of(instants: pd.Series) -> set[date]:
    """The UTC days of aware instants, without a Python object per row."""
    micros = pd.to_datetime(instants, utc=True).dt.as_unit("us").astype("int64").to_numpy()
    days = np.unique(micros // _US_PER_DAY)
    return {_EPOCH + timedelta(days=int(day)) for day in days}


def insert_positions(conn: Any, rows: pd.DataFrame, *, direct: bool = False) -> int:
    """Write new enriched rows; rows inserted. ``direct``: one binary COPY into the table (the
    rows must be known not to be stored, see the module docstring), else COPY into a staging
    table and INSERT ... ON CONFLICT DO NOTHING.

    Missing day partitions are created first (a late record may need an older day)."""
    if rows.empty:
        return 0
    rows = insert_frame(rows)
    ensure_partitions(conn, days_of(rows["datetime_utc"]) - set(partition_days(conn)))
    if direct:
        # partition by partition, each in natural-key order: the COPY routes long runs of rows
        # to one partition and each track's rows land next to each other in its B-tree
        micros = rows["datetime_utc"].dt.as_unit("us").astype("int64").to_numpy()
        order = np.lexsort(
            (rows["id"].to_numpy(), micros, rows["track_id"].to_numpy(), micros // _US_PER_DAY)
        )
        rows = rows.take(order).reset_index(drop=True)
        try:
            copy_into(conn, "positions", rows, POSITION_COLUMNS, schema="positions")
        except Exception as error:
            if getattr(error, "sqlstate", None) == UNIQUE_VIOLATION:
                raise NaturalKeyConflict(str(error)) from error
            raise
        return len(rows)
    execute(conn, "CREATE TEMP TABLE _positions_new (LIKE positions.positions) ON COMMIT DROP")
    copy_into(conn, "_positions_new", rows, POSITION_COLUMNS)
    columns = ", ".join(POSITION_COLUMNS)
    cur = conn.cursor()
    try:
        cur.execute(
            f"INSERT INTO positions.positions ({columns}) SELECT {columns} FROM _positions_new "
            "ON CONFLICT ON CONSTRAINT positions_natural_key DO NOTHING"
        )
        inserted = cur.rowcount
    finally:
        cur.close()
    execute(conn, "DROP TABLE _positions_new")
    return int(inserted)


def update_enrichment(conn: Any, rows: pd.DataFrame) -> int:
    """Write revised enrichment of stored rows (reached by track, instant and id); rows updated."""
    if rows.empty:
        return 0
    rows = insert_frame(rows)
    columns = ["id", "track_id", "datetime_utc", *ENRICHED_COLUMNS]
    execute(
        conn,
        "CREATE TEMP TABLE _positions_upd ON COMMIT DROP AS "
        f"SELECT {', '.join(columns)} FROM positions.positions WITH NO DATA",
    )
    copy_into(conn, "_positions_upd", rows, columns)
    assignments = ", ".join(f"{c} = u.{c}" for c in ENRICHED_COLUMNS)
    # the bounds let the planner skip the partitions no revised row is in
    instants = rows["datetime_utc"]
    cur = conn.cursor()
    try:
        cur.execute(
            f"UPDATE positions.positions p SET {assignments} FROM _positions_upd u "
            "WHERE p.track_id = u.track_id AND p.datetime_utc = u.datetime_utc AND p.id = u.id "
            "AND p.datetime_utc BETWEEN $1::timestamptz AND $2::timestamptz",
            [instants.min().isoformat(), instants.max().isoformat()],
        )
        updated = cur.rowcount
    finally:
        cur.close()
    execute(conn, "DROP TABLE _positions_upd")
    return int(updated)


def changed_rows(stored: pd.DataFrame, revised: pd.DataFrame) -> pd.DataFrame:
    """The revised rows whose enrichment differs from what is stored (with track and instant)."""
    if revised.empty:
        return revised
    old = stored.set_index("id")[ENRICHED_COLUMNS]
    new = revised.merge(stored[["id", "track_id", "datetime_utc"]], on="id").set_index("id")
    old = old.reindex(new.index)
    differs = np.zeros(len(new), dtype=bool)
    for column in ENRICHED_COLUMNS:
        a = old[column].astype("object")
        b = new[column].astype("object")
        same = (a.isna() & b.isna()) | (a == b).fillna(False).astype(bool)
        differs |= ~same.to_numpy(dtype=bool)
    return new[differs].reset_index()
