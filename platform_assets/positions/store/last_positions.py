"""Refreshing ``positions.last_positions``: read what the pure computation needs, replace the
table in the caller's transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from platform_assets.positions import last_positions as last_positions_module
from platform_assets.positions.store.adbc import copy_into, execute, frame
from platform_assets.positions.store.reading import read_vessels
from platform_assets.positions.store.schema import POSITION_COLUMNS

ANY_AGE = timedelta(days=36500)

LAST_POSITION_COLUMNS = [
    "track_id",
    "id",
    "vessel_id",
    "cfr",
    "external_immatriculation",
    "ircs",
    "vessel_name",
    "flag_state",
    "latitude",
    "longitude",
    "speed",
    "course",
    "last_position_datetime_utc",
    "is_manual",
    "emission_period_s",
    "vessel_identifier",
    "is_at_port",
    "is_fishing",
    "time_emitting_at_sea",
    "estimated_current_latitude",
    "estimated_current_longitude",
]
_FLOATS = (
    "latitude",
    "longitude",
    "speed",
    "course",
    "emission_period_s",
    "time_emitting_at_sea",
    "estimated_current_latitude",
    "estimated_current_longitude",
)
_TEXTS = (
    "cfr",
    "external_immatriculation",
    "ircs",
    "vessel_name",
    "flag_state",
    "vessel_identifier",
)


def last_positions_inputs(conn: Any, now: datetime, window_minutes: int = 1440) -> pd.DataFrame:
    """The two latest positions of each track that needs them: those with a position in the
    window (now - window, now + 1 day), read from one or two partitions, and those whose stored
    last position is behind their track's latest (a late file, a backfill, a first refresh
    after days of data), read one track at a time through the track index."""
    columns = ", ".join(POSITION_COLUMNS)
    return frame(
        conn,
        f"""
        SELECT {columns} FROM (
            SELECT p.*, row_number() OVER (
                PARTITION BY track_id ORDER BY datetime_utc DESC, id DESC) AS recency
            FROM positions.positions p
            WHERE datetime_utc > $1::timestamptz - make_interval(mins => $2::int)
              AND datetime_utc < $1::timestamptz + interval '1 day'
        ) ranked WHERE recency <= 2
        UNION ALL
        SELECT {columns} FROM (
            SELECT s.track_id AS behind_track, s.last_datetime_utc AS behind_until
            FROM positions.track_state s
            LEFT JOIN positions.last_positions l ON l.track_id = s.track_id
            WHERE s.last_datetime_utc <= $1::timestamptz - make_interval(mins => $2::int)
              AND (l.track_id IS NULL OR l.last_position_datetime_utc < s.last_datetime_utc)
        ) behind
        CROSS JOIN LATERAL (
            SELECT * FROM positions.positions p
            WHERE p.track_id = behind.behind_track AND p.datetime_utc <= behind.behind_until
            ORDER BY p.datetime_utc DESC, p.id DESC LIMIT 2
        ) latest
        """,
        [now.isoformat(), window_minutes],
    )


def read_last_positions(conn: Any) -> pd.DataFrame:
    """positions.last_positions as stored."""
    return frame(conn, f"SELECT {', '.join(LAST_POSITION_COLUMNS)} FROM positions.last_positions")


def refresh_last_positions(conn: Any, now: datetime) -> int:
    """Recompute last positions at ``now`` and replace the table in this transaction; a track
    that stopped emitting keeps its last position. Returns the row count."""
    positions = last_positions_inputs(conn, now)
    previous = read_last_positions(conn)
    # the inputs are already the tracks to refresh (some older than the usual window)
    computed = last_positions_module.last_positions(
        positions, read_vessels(conn), now, previous=previous, window=ANY_AGE
    )
    # the pure function has no track_id: the chosen position (new or kept) gives it
    tracks_by_id = pd.concat(
        [positions[["id", "track_id"]], previous[["id", "track_id"]]], ignore_index=True
    ).drop_duplicates("id")
    computed = computed.drop(columns=["track_id"], errors="ignore").merge(
        tracks_by_id.astype("int64"), on="id", how="left"
    )
    out = _typed(computed)
    execute(conn, "DELETE FROM positions.last_positions")
    execute(
        conn,
        "CREATE TEMP TABLE _last_in (LIKE positions.last_positions INCLUDING DEFAULTS) "
        "ON COMMIT DROP",
    )
    copy_into(conn, "_last_in", out, LAST_POSITION_COLUMNS)
    columns = ", ".join(LAST_POSITION_COLUMNS)
    execute(
        conn, f"INSERT INTO positions.last_positions ({columns}) SELECT {columns} FROM _last_in"
    )
    execute(conn, "DROP TABLE _last_in")
    return len(out)


def _typed(computed: pd.DataFrame) -> pd.DataFrame:
    """The computed rows in the table's column order and types."""
    out = computed.reset_index(drop=True).reindex(columns=LAST_POSITION_COLUMNS)
    out["last_position_datetime_utc"] = pd.to_datetime(
        out["last_position_datetime_utc"], utc=True
    ).astype("datetime64[us, UTC]")
    for column in ("track_id", "id", "vessel_id"):
        out[column] = pd.to_numeric(out[column]).astype("Int64")
    for column in ("is_manual", "is_at_port", "is_fishing"):
        out[column] = out[column].astype("boolean")
    for column in _FLOATS:
        out[column] = pd.to_numeric(out[column]).astype("float64")
    for column in _TEXTS:
        out[column] = out[column].astype("string")
    return out
