"""Re-enriching tracks from a past instant: late records, and backfills of stored days.

At port the carried state is empty (time at sea 0, no fishing run), so the state rebuilt from a
track's last two stored rows before the instant continues exactly as a full recompute would.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from platform_assets.positions import enrichment
from platform_assets.positions.store.adbc import copy_into, execute, frame
from platform_assets.positions.store.schema import (
    IDENTITY,
    POSITION_COLUMNS,
    as_batch_types,
    lock,
    typed_stored,
)
from platform_assets.positions.store.state import save_states
from platform_assets.positions.store.writes import changed_rows, update_enrichment


def replay_tracks(
    conn: Any, first_new: pd.DataFrame, new_rows: pd.DataFrame, anchorages: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Re-enrich tracks from just before an instant: the state rebuilt from each track's last
    two stored rows at or before ``first_new`` (new rows have larger ids, so stored rows of the
    same instant precede them), then its stored rows after it plus ``new_rows``.

    Returns (enriched, new state, the stored rows read: what the enrichment may revise)."""
    execute(conn, "CREATE TEMP TABLE _late (track_id bigint, first_new timestamptz) ON COMMIT DROP")
    copy_into(conn, "_late", first_new, ["track_id", "first_new"])
    columns = ", ".join("p." + c for c in POSITION_COLUMNS)
    before = frame(
        conn,
        f"SELECT {columns} FROM _late l CROSS JOIN LATERAL (SELECT * FROM positions.positions p "
        "WHERE p.track_id = l.track_id AND p.datetime_utc <= l.first_new "
        "ORDER BY p.datetime_utc DESC, p.id DESC LIMIT 2) p",
    )
    after = frame(
        conn,
        f"SELECT {columns} FROM _late l JOIN positions.positions p "
        "ON p.track_id = l.track_id AND p.datetime_utc > l.first_new",
    )
    execute(conn, "DROP TABLE _late")
    state = (
        enrichment.state_from_enriched(typed_stored(before))
        if not before.empty
        else enrichment.empty_state()
    )
    tail = as_batch_types(typed_stored(after)) if not after.empty else after
    combined = pd.concat([tail, new_rows], ignore_index=True) if not tail.empty else new_rows
    enriched, new_state = enrichment.enrich(combined, anchorages, state=state)
    stored = pd.concat([before, after], ignore_index=True)
    return enriched, new_state, typed_stored(stored)


def reenrich_since(conn: Any, since: datetime, anchorages: pd.DataFrame) -> int:
    """Recompute the enrichment of every track with positions at or after ``since``, continuing
    from its stored rows before ``since`` (a backfill after the anchorages changed); rows whose
    values changed are updated. Returns that number."""
    lock(conn)
    first = frame(
        conn,
        "SELECT track_id, min(datetime_utc) AS first_new FROM positions.positions "
        "WHERE datetime_utc >= $1::timestamptz GROUP BY track_id",
        [since.isoformat()],
    )
    if first.empty:
        return 0
    # Replay from just before each track's first row in the window: that row is re-enriched too.
    first["first_new"] = pd.to_datetime(first["first_new"], utc=True) - pd.Timedelta(microseconds=1)
    first["track_id"] = first["track_id"].astype("int64")
    empty = pd.DataFrame(columns=[*POSITION_COLUMNS])
    enriched, new_state, stored = replay_tracks(conn, first, as_batch_types(empty), anchorages)
    updated = update_enrichment(conn, changed_rows(stored, enriched))
    identities = frame(
        conn,
        f"SELECT track_id, {', '.join(IDENTITY)} FROM positions.track_state "
        "WHERE track_id IN (SELECT track_id FROM positions.positions "
        "WHERE datetime_utc >= $1::timestamptz)",
        [since.isoformat()],
    )
    identities["track_id"] = identities["track_id"].astype("int64")
    save_states(conn, identities, new_state)
    return updated
