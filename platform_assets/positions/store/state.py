"""Tracks and their carried enrichment state (``positions.track_state``).

A track is one exact identity triple (nulls equal). Its state (last position, time at sea,
fishing run: ``enrichment.STATE_DTYPES``) is stored as one JSON object, built and read by
PostgreSQL from typed columns (binary COPY in, Arrow out), so no Python JSON runs per track and
every value is exact: a double is written in its shortest round-trip form (an infinity as the
string "Infinity", which reads back as one), an instant as ISO text. Objects written by earlier
versions (``{"$f": "inf"}``, ``{"$t": "..."}``) read the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from platform_assets.positions import enrichment
from platform_assets.positions.store.adbc import copy_into, execute, frame
from platform_assets.positions.store.schema import IDENTITY, NULL_SENTINEL, identity_key

#: The stored fields of a state and their SQL types.
STATE_FIELDS: dict[str, str] = {
    "id": "bigint",
    "datetime_utc": "timestamptz",
    "latitude": "double precision",
    "longitude": "double precision",
    "is_at_port": "boolean",
    "meters_from_previous_position": "double precision",
    "time_since_previous_position": "double precision",
    "average_speed": "double precision",
    "is_fishing": "boolean",
    "time_emitting_at_sea": "double precision",
    "sea_time_us": "bigint",
    "previous_candidate": "boolean",
}
_PREFIX = "state_"


def _read_field(name: str, sql_type: str) -> str:
    """SQL reading one state field as its type (the older object forms included)."""
    if sql_type == "double precision":
        text = f"coalesce(t.state -> '{name}' ->> '$f', t.state ->> '{name}')"
    elif sql_type == "timestamptz":
        text = f"coalesce(t.state -> '{name}' ->> '$t', t.state ->> '{name}')"
    else:
        text = f"t.state ->> '{name}'"
    return f"({text})::{sql_type} AS {_PREFIX}{name}"


def states_of(tracks: pd.DataFrame) -> pd.DataFrame:
    """The carried states of tracks read by `resolve_tracks` (identity columns + fields), for
    the tracks that have one."""
    carried = tracks[tracks["has_state"].fillna(False).astype(bool)]
    if carried.empty:
        return enrichment.empty_state()
    states = carried[IDENTITY].reset_index(drop=True)
    for name in STATE_FIELDS:
        states[name] = carried[_PREFIX + name].to_numpy()
    for column, dtype in enrichment.STATE_DTYPES.items():
        if column in IDENTITY:
            continue
        if dtype.startswith("datetime64"):
            states[column] = pd.to_datetime(states[column], utc=True).astype(dtype)
        elif dtype == "float64":
            states[column] = pd.to_numeric(states[column]).astype(dtype)
        elif dtype == "int64":
            states[column] = pd.to_numeric(states[column]).astype("int64")
        else:
            states[column] = states[column].astype(dtype)
    return states[list(enrichment.STATE_DTYPES)]


def resolve_tracks(conn: Any, identities: pd.DataFrame) -> pd.DataFrame:
    """track_id, last stored datetime/id and carried state of each distinct identity (row i of
    the result is identity i), creating missing tracks."""
    execute(
        conn,
        "CREATE TEMP TABLE _identities (ordinal bigint, internal_reference_number text, "
        "external_reference_number text, ircs text) ON COMMIT DROP",
    )
    numbered = identities[IDENTITY].reset_index(drop=True)
    numbered.insert(0, "ordinal", np.arange(len(numbered), dtype="int64"))
    copy_into(conn, "_identities", numbered, ["ordinal", *IDENTITY])
    join = " AND ".join(
        f"coalesce(t.{c}, '{NULL_SENTINEL}') = coalesce(i.{c}, '{NULL_SENTINEL}')" for c in IDENTITY
    )
    fields = ", ".join(_read_field(name, kind) for name, kind in STATE_FIELDS.items())
    select = (
        f"SELECT t.track_id, {', '.join('t.' + c for c in IDENTITY)}, t.last_position_id, "
        f"t.last_datetime_utc, t.state IS NOT NULL AS has_state, {fields} "
        f"FROM _identities i JOIN positions.track_state t ON {join} ORDER BY i.ordinal"
    )
    tracks = frame(conn, select)
    if len(tracks) < len(numbered):  # new tracks (usually none once a fleet is known)
        execute(
            conn,
            f"INSERT INTO positions.track_state ({', '.join(IDENTITY)}) "
            f"SELECT {', '.join(IDENTITY)} FROM _identities "
            f"ORDER BY {', '.join(IDENTITY)} ON CONFLICT DO NOTHING",
        )
        tracks = frame(conn, select)
    execute(conn, "DROP TABLE _identities")
    if len(tracks) != len(numbered):
        raise RuntimeError(
            f"{len(numbered)} track identities resolved to {len(tracks)} tracks: "
            "positions.track_state lost its unique identity key?"
        )
    return tracks


def save_states(conn: Any, tracks: pd.DataFrame, states: pd.DataFrame) -> None:
    """Store each touched track's new state; its last position (``id``, ``datetime_utc``) is
    the track's last stored row, kept unless the table already holds a later one."""
    if states.empty:
        return
    found = enrichment.key_positions(identity_key(states), identity_key(tracks))
    states = states[found >= 0].assign(
        track_id=tracks["track_id"].to_numpy(dtype="int64")[found[found >= 0]]
    )
    payload = pd.DataFrame({"track_id": states["track_id"].to_numpy()})
    for name in STATE_FIELDS:
        values = states[name]
        if STATE_FIELDS[name] == "double precision":
            # NaN is "no value" (null), as the enrichment reads it back
            values = values.astype("float64").where(lambda v: ~np.isnan(v))
        payload[name] = values.to_numpy()
    columns = ["track_id", *STATE_FIELDS]
    typed = ", ".join(f"{name} {kind}" for name, kind in STATE_FIELDS.items())
    execute(conn, f"CREATE TEMP TABLE _states (track_id bigint, {typed}) ON COMMIT DROP")
    copy_into(conn, "_states", payload, columns)
    built = ", ".join(f"'{name}', s.{name}" for name in STATE_FIELDS)
    execute(
        conn,
        f"""
        UPDATE positions.track_state t
        SET state = jsonb_build_object({built}),
            last_position_id = CASE WHEN t.last_datetime_utc IS NULL
                OR s.datetime_utc >= t.last_datetime_utc THEN s.id
                ELSE t.last_position_id END,
            last_datetime_utc = greatest(t.last_datetime_utc, s.datetime_utc),
            updated_at = now()
        FROM _states s WHERE t.track_id = s.track_id
        """,
    )
    execute(conn, "DROP TABLE _states")
