"""Columns of the positions tables and the frame types the store writes and reads them in."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from platform_assets.positions.store.adbc import execute

IDENTITY = ["internal_reference_number", "external_reference_number", "ircs"]
NATURAL_KEY = ["track_id", "datetime_utc", "latitude", "longitude"]
RAW_COLUMNS = [
    *IDENTITY,
    "vessel_name",
    "flag_state",
    "from_country",
    "destination_country",
    "trip_number",
    "latitude",
    "longitude",
    "speed",
    "course",
    "datetime_utc",
    "message_type",
    "is_manual",
    "network_type",
]
ENRICHED_COLUMNS = [
    "is_at_port",
    "meters_from_previous_position",
    "time_since_previous_position",
    "average_speed",
    "is_fishing",
    "time_emitting_at_sea",
]
POSITION_COLUMNS = ["id", "track_id", *RAW_COLUMNS, *ENRICHED_COLUMNS]
TYPED = {"datetime_utc", "latitude", "longitude", "speed", "course", "is_manual"}
INGEST_LOCK = "positions.ingest"
NULL_SENTINEL = "\x01"  # joins identities with nulls equal (no identifier holds U+0001)


def lock(conn: Any) -> None:
    """Take the ingestion lock (transaction advisory lock): one loader at a time."""
    execute(conn, "SELECT pg_advisory_xact_lock(hashtext($1))", [INGEST_LOCK])


def identity_key(frame: pd.DataFrame) -> pd.Series:
    """One string per row for the identity triple, nulls equal (to match tracks in pandas).

    Costs a string per row: use it on small frames (one row per track); for a batch of
    positions use `identity_codes`."""
    parts = [frame[c].astype("string").fillna(NULL_SENTINEL) for c in IDENTITY]
    return parts[0].str.cat(parts[1:], sep="\x02")


def identity_codes(frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Each row's identity as a small integer (nulls equal), and the distinct identities in
    code order: hashing the three columns, no string built per row."""
    if frame.empty:
        return np.empty(0, dtype="int64"), frame[IDENTITY].iloc[:0].reset_index(drop=True)
    codes = frame.groupby(IDENTITY, dropna=False, sort=False).ngroup().to_numpy(dtype="int64")
    first = np.unique(codes, return_index=True)[1]
    return codes, frame[IDENTITY].iloc[first].reset_index(drop=True)


def normalise_parsed(frame: pd.DataFrame) -> pd.DataFrame:
    """The parser's frame in the table's column names and types (missing columns as nulls)."""
    frame = frame.rename(columns={"date_time": "datetime_utc"})
    # reindex keeps each column's dtype (to_numpy would turn instants into Python objects)
    out = frame.reset_index(drop=True).reindex(columns=RAW_COLUMNS)
    out["datetime_utc"] = pd.to_datetime(out["datetime_utc"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    for column in ("latitude", "longitude", "speed", "course"):
        out[column] = pd.to_numeric(out[column], errors="raise").astype("float64")
    out["is_manual"] = out["is_manual"].fillna(False).astype(bool)
    for column in (c for c in RAW_COLUMNS if c not in TYPED):
        out[column] = out[column].astype("string")
    return out


def insert_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Enriched rows in the exact column order and types of ``positions.positions``."""
    out = frame.reset_index(drop=True).reindex(columns=POSITION_COLUMNS)
    out["id"] = out["id"].astype("int64")
    out["track_id"] = out["track_id"].astype("int64")
    out["datetime_utc"] = pd.to_datetime(out["datetime_utc"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    for column in ("is_at_port", "is_fishing"):
        out[column] = out[column].astype("boolean")
    for column in (
        "meters_from_previous_position",
        "time_since_previous_position",
        "average_speed",
        "time_emitting_at_sea",
        "latitude",
        "longitude",
        "speed",
        "course",
    ):
        out[column] = pd.to_numeric(out[column]).astype("float64")
    out["is_manual"] = out["is_manual"].fillna(False).astype(bool)
    for column in RAW_COLUMNS:
        if column not in TYPED:
            out[column] = out[column].astype("string")
    return out


def typed_stored(stored: pd.DataFrame) -> pd.DataFrame:
    """Stored rows as read (nullable Arrow types) in the types the enrichment produces."""
    stored = stored.copy()
    stored["datetime_utc"] = pd.to_datetime(stored["datetime_utc"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    for column in ("id", "track_id"):
        stored[column] = stored[column].astype("int64")
    for column in ENRICHED_COLUMNS:
        if column in ("is_at_port", "is_fishing"):
            stored[column] = stored[column].astype("boolean")
        else:
            stored[column] = stored[column].astype("float64")
    stored["is_at_port"] = stored["is_at_port"].fillna(False).astype(bool)
    return stored


def as_batch_types(stored: pd.DataFrame) -> pd.DataFrame:
    """Stored rows as a batch of new ones (raw columns only) to enrich again."""
    stored = stored.copy()
    stored["datetime_utc"] = pd.to_datetime(stored["datetime_utc"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    stored["id"] = stored["id"].astype("int64")
    stored["track_id"] = stored["track_id"].astype("int64")
    stored["is_manual"] = stored["is_manual"].fillna(False).astype(bool)
    return stored.drop(columns=[c for c in ENRICHED_COLUMNS if c in stored.columns])
