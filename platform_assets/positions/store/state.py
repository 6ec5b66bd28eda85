"""Tracks and their carried enrichment state (``positions.track_state``).

A track is one exact identity triple (nulls equal). Its state (last position, time at sea,
fishing run: ``enrichment.STATE_DTYPES``) is stored as JSON with exact floats, infinities and
instants, so that the next batch continues exactly where this one stopped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from platform_assets.positions import enrichment
from platform_assets.positions.store.adbc import copy_into, execute, frame
from platform_assets.positions.store.schema import IDENTITY, NULL_SENTINEL, identity_key


def _encode(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return {"$t": pd.Timestamp(value).isoformat()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return {"$f": "inf" if value > 0 else "-inf"}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$t" in value:
            return pd.Timestamp(value["$t"])
        if "$f" in value:
            return float(value["$f"])
    return value


def encode_states(states: pd.DataFrame) -> list[str]:
    """Each state row as JSON (exact floats, infinities and instants kept)."""
    records = states.to_dict(orient="records")
    return [
        json.dumps({str(k): _encode(v) for k, v in record.items() if k not in IDENTITY})
        for record in records
    ]


def decode_states(identities: pd.DataFrame, payloads: Sequence[str | None]) -> pd.DataFrame:
    """The carried states of tracks (identity columns + the stored fields) as a frame."""
    records = []
    for identity, payload in zip(
        identities[IDENTITY].to_dict(orient="records"), payloads, strict=True
    ):
        if not isinstance(payload, str | dict):  # None / NaN: a track without state yet
            continue
        data = json.loads(payload) if isinstance(payload, str) else payload
        records.append({**identity, **{k: _decode(v) for k, v in data.items()}})
    if not records:
        return enrichment.empty_state()
    states = pd.DataFrame.from_records(records)
    for column, dtype in enrichment.STATE_DTYPES.items():
        if column not in states.columns or column in IDENTITY:
            continue
        if dtype.startswith("datetime64"):
            states[column] = pd.to_datetime(states[column], utc=True).astype(dtype)
        elif dtype == "float64":
            states[column] = pd.to_numeric(states[column]).astype(dtype)
        else:
            states[column] = states[column].astype(dtype)
    return states


def resolve_tracks(conn: Any, batch: pd.DataFrame) -> pd.DataFrame:
    """track_id, last stored datetime/id and carried state of every identity in ``batch``,
    creating missing tracks."""
    identities = batch[IDENTITY].drop_duplicates().reset_index(drop=True)
    execute(
        conn,
        "CREATE TEMP TABLE _identities (internal_reference_number text, "
        "external_reference_number text, ircs text) ON COMMIT DROP",
    )
    copy_into(conn, "_identities", identities, IDENTITY)
    execute(
        conn,
        f"INSERT INTO positions.track_state ({', '.join(IDENTITY)}) "
        f"SELECT {', '.join(IDENTITY)} FROM _identities "
        f"ORDER BY {', '.join(IDENTITY)} ON CONFLICT DO NOTHING",
    )
    join = " AND ".join(
        f"coalesce(t.{c}, '{NULL_SENTINEL}') = coalesce(i.{c}, '{NULL_SENTINEL}')" for c in IDENTITY
    )
    tracks = frame(
        conn,
        f"SELECT t.track_id, {', '.join('t.' + c for c in IDENTITY)}, t.last_position_id, "
        f"t.last_datetime_utc, t.state::text AS state "
        f"FROM _identities i JOIN positions.track_state t ON {join}",
    )
    execute(conn, "DROP TABLE _identities")
    return tracks


def save_states(conn: Any, tracks: pd.DataFrame, states: pd.DataFrame, batch: pd.DataFrame) -> None:
    """Store each touched track's new state with its last stored position."""
    if states.empty:
        return
    by_identity = dict(zip(identity_key(tracks), tracks["track_id"], strict=True))
    states = states.assign(track_id=identity_key(states).map(by_identity))
    states = states[states["track_id"].notna()]
    payload = pd.DataFrame(
        {
            "track_id": states["track_id"].astype("int64").to_numpy(),
            "state": encode_states(states.drop(columns=["track_id"])),
        }
    ).merge(_last_rows(batch), on="track_id", how="left")
    execute(
        conn,
        "CREATE TEMP TABLE _states (track_id bigint, state text, last_position_id bigint, "
        "last_datetime_utc timestamptz) ON COMMIT DROP",
    )
    copy_into(
        conn, "_states", payload, ["track_id", "state", "last_position_id", "last_datetime_utc"]
    )
    execute(
        conn,
        """
        UPDATE positions.track_state t
        SET state = s.state::jsonb,
            last_position_id = CASE WHEN t.last_datetime_utc IS NULL
                OR s.last_datetime_utc >= t.last_datetime_utc THEN s.last_position_id
                ELSE t.last_position_id END,
            last_datetime_utc = greatest(t.last_datetime_utc, s.last_datetime_utc),
            updated_at = now()
        FROM _states s WHERE t.track_id = s.track_id
        """,
    )
    execute(conn, "DROP TABLE _states")


def _last_rows(batch: pd.DataFrame) -> pd.DataFrame:
    """Each track's last row of the batch (by instant, then id)."""
    ordered = batch.sort_values(["track_id", "datetime_utc", "id"], kind="stable")
    ends = ordered.groupby("track_id", as_index=False).last()[["track_id", "id", "datetime_utc"]]
    return ends.rename(columns={"id": "last_position_id", "datetime_utc": "last_datetime_utc"})
