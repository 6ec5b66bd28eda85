"""Loading one batch of parsed positions, idempotently and enriched (``load_positions``).

In one transaction:

1. Rows repeated inside the batch are dropped (natural key: track + datetime + coordinates).
2. The ingestion lock (a transaction advisory lock) serialises loaders, so two runs cannot
   enrich the same track from the same state; the unique natural key is the final guard
   (``INSERT ... ON CONFLICT DO NOTHING`` from a COPY-filled staging table).
3. Each track is resolved (``positions.track_state``, created when new) with its carried state.
   Rows later than the track's last stored position are enriched from that state (the common
   case: one write per row). Rows of a track whose batch reaches back to or before its last
   stored position are first checked against the stored rows (a file ingested twice adds
   nothing); what remains and is older than the state is a late record: that track is
   re-enriched from the state rebuilt from its last two stored rows before the late record
   (``reenrich.replay_tracks``), which gives exactly the full recompute.
4. Stored rows whose enrichment changes (the previous last row, whose ``is_fishing`` waited
   for a successor; a track's tail after a late record) are updated in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from platform_assets.positions import enrichment
from platform_assets.positions.store.adbc import copy_into, execute, frame, scalar
from platform_assets.positions.store.reenrich import replay_tracks
from platform_assets.positions.store.schema import (
    NATURAL_KEY,
    identity_key,
    lock,
    normalise_parsed,
)
from platform_assets.positions.store.state import decode_states, resolve_tracks, save_states
from platform_assets.positions.store.writes import (
    changed_rows,
    insert_positions,
    update_enrichment,
)


@dataclass
class LoadResult:
    """What one load did."""

    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    late_tracks: int = 0
    updated: int = 0
    days: set[date] = field(default_factory=set)

    def add(self, other: LoadResult) -> None:
        """Accumulate another batch's counts."""
        self.rows += other.rows
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.late_tracks += other.late_tracks
        self.updated += other.updated
        self.days |= other.days


def load_positions(
    conn: Any, parsed: pd.DataFrame, anchorages: pd.DataFrame, *, normalised: bool = False
) -> LoadResult:
    """Store a batch of parsed positions idempotently, enriched; see the module docstring.

    ``anchorages``: the ``reference.anchorages`` rows (``h3`` column at least). Runs in the
    caller's transaction, which must commit.
    """
    batch = parsed if normalised else normalise_parsed(parsed)
    result = LoadResult(rows=len(batch))
    if batch.empty:
        return result
    lock(conn)
    tracks = resolve_tracks(conn, batch)
    track_of = dict(zip(identity_key(tracks), tracks["track_id"], strict=True))
    batch = batch.assign(track_id=identity_key(batch).map(track_of))
    before = len(batch)
    batch = batch.drop_duplicates(NATURAL_KEY, keep="first")
    result.duplicates += before - len(batch)

    last_by_track = dict(
        zip(tracks["track_id"], pd.to_datetime(tracks["last_datetime_utc"], utc=True), strict=True)
    )
    last = pd.to_datetime(batch["track_id"].map(last_by_track), utc=True)
    reaches_back = last.notna() & (batch["datetime_utc"] <= last)
    suspect_tracks = set(batch.loc[reaches_back, "track_id"])
    if suspect_tracks:
        existing = _existing_keys(conn, batch[batch["track_id"].isin(suspect_tracks)])
        result.duplicates += int(existing.sum())
        batch = batch.drop(index=existing[existing].index)
        last = last.loc[batch.index]
    late_mask = last.notna() & (batch["datetime_utc"] < last)
    late_tracks = set(batch.loc[late_mask, "track_id"])
    result.late_tracks = len(late_tracks)
    if batch.empty:
        return result

    batch = batch.assign(id=reserve_ids(conn, len(batch)))
    appended = batch[~batch["track_id"].isin(late_tracks)]
    late = batch[batch["track_id"].isin(late_tracks)]
    inserts: list[pd.DataFrame] = []
    updates: list[pd.DataFrame] = []
    states: list[pd.DataFrame] = []

    if not appended.empty:
        carried = tracks[tracks["track_id"].isin(set(appended["track_id"]))]
        state = decode_states(carried, carried["state"].tolist())
        enriched, new_state = enrichment.enrich(appended, anchorages, state=state)
        new_ids = set(appended["id"])
        inserts.append(appended.merge(enriched, on="id", how="inner"))
        updates.append(_locate_revised(conn, enriched[~enriched["id"].isin(new_ids)], tracks))
        states.append(new_state)

    if late_tracks:
        first_new = (
            late.groupby("track_id", as_index=False)["datetime_utc"]
            .min()
            .rename(columns={"datetime_utc": "first_new"})
        )
        enriched, new_state, stored = replay_tracks(conn, first_new, late, anchorages)
        new_ids = set(late["id"])
        inserts.append(late.merge(enriched, on="id", how="inner"))
        updates.append(changed_rows(stored, enriched[~enriched["id"].isin(new_ids)]))
        states.append(new_state)

    insert = pd.concat(inserts, ignore_index=True) if inserts else pd.DataFrame()
    result.inserted = insert_positions(conn, insert)
    result.days = set(insert["datetime_utc"].dt.date) if not insert.empty else set()
    revised = [u for u in updates if not u.empty]
    result.updated = update_enrichment(
        conn, pd.concat(revised, ignore_index=True) if revised else pd.DataFrame()
    )
    save_states(conn, tracks, pd.concat(states, ignore_index=True), batch)
    return result


def reserve_ids(conn: Any, count: int) -> np.ndarray:
    """``count`` new position ids (a block of the sequence; safe under the ingestion lock)."""
    if count == 0:
        return np.empty(0, dtype="int64")
    first = int(scalar(conn, "SELECT nextval('positions.positions_id_seq')"))
    if count > 1:
        execute(
            conn, "SELECT setval('positions.positions_id_seq', $1::bigint)", [first + count - 1]
        )
    return np.arange(first, first + count, dtype="int64")


def _existing_keys(conn: Any, rows: pd.DataFrame) -> pd.Series:
    """For each row (natural key columns), whether positions.positions already holds it."""
    if rows.empty:
        return pd.Series([], dtype=bool)
    probe = rows[NATURAL_KEY].copy()
    probe["row_number"] = np.arange(len(probe), dtype="int64")
    execute(
        conn,
        "CREATE TEMP TABLE _probe (track_id bigint, datetime_utc timestamptz, "
        "latitude double precision, longitude double precision, row_number bigint) "
        "ON COMMIT DROP",
    )
    copy_into(conn, "_probe", probe, [*NATURAL_KEY, "row_number"])
    found = frame(
        conn,
        "SELECT q.row_number FROM _probe q WHERE EXISTS (SELECT 1 FROM positions.positions p "
        "WHERE p.track_id = q.track_id AND p.datetime_utc = q.datetime_utc "
        "AND p.latitude = q.latitude AND p.longitude = q.longitude)",
    )
    execute(conn, "DROP TABLE _probe")
    exists = np.zeros(len(rows), dtype=bool)
    exists[found["row_number"].to_numpy(dtype="int64")] = True
    return pd.Series(exists, index=rows.index)


def _locate_revised(conn: Any, revised: pd.DataFrame, tracks: pd.DataFrame) -> pd.DataFrame:
    """Stored rows the enrichment revised while appending (the rows its carried state still
    held open), with the track and instant that reach them through the natural-key index."""
    if revised.empty:
        return revised
    known = tracks[["track_id", "last_position_id", "last_datetime_utc"]].dropna()
    located = revised.merge(
        known.rename(columns={"last_position_id": "id", "last_datetime_utc": "datetime_utc"}),
        on="id",
        how="left",
    )
    missing = located["track_id"].isna()
    if missing.any():
        # Older open rows (rare): look them up among the touched tracks' recent rows.
        ids = ",".join(str(int(i)) for i in located.loc[missing, "id"])
        since = pd.to_datetime(known["last_datetime_utc"], utc=True).min() - pd.Timedelta(days=2)
        found = frame(
            conn,
            f"SELECT id, track_id, datetime_utc FROM positions.positions "
            f"WHERE datetime_utc >= $1::timestamptz AND id IN ({ids})",
            [since.isoformat()],
        )
        located = located.drop(columns=["track_id", "datetime_utc"]).merge(
            pd.concat([located.loc[~missing, ["id", "track_id", "datetime_utc"]], found]),
            on="id",
            how="inner",
        )
    return located
