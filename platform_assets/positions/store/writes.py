"""Writing enriched rows: new rows through a COPY-filled staging table, revised rows in place."""

from __future__ import annotations

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


def insert_positions(conn: Any, rows: pd.DataFrame) -> int:
    """COPY into a staging table, then INSERT ... ON CONFLICT DO NOTHING; rows inserted.

    Missing day partitions are created first (a late record may need an older day)."""
    if rows.empty:
        return 0
    rows = insert_frame(rows)
    ensure_partitions(conn, set(rows["datetime_utc"].dt.date) - set(partition_days(conn)))
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
    cur = conn.cursor()
    try:
        cur.execute(
            f"UPDATE positions.positions p SET {assignments} FROM _positions_upd u "
            "WHERE p.track_id = u.track_id AND p.datetime_utc = u.datetime_utc AND p.id = u.id"
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
