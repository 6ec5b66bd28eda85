"""Loading one batch of parsed positions, idempotently and enriched (``load_positions``).

In one transaction:

1. Rows repeated inside the batch are dropped (natural key: track + datetime + coordinates).
2. The ingestion lock (a transaction advisory lock) serialises loaders, so two runs cannot
   enrich the same track from the same state; the unique natural key is the final guard (new
   rows are copied straight into the table; a row stored behind the lock's back makes that
   COPY fail, and the batch is loaded again through a staging table and ``INSERT ... ON
   CONFLICT DO NOTHING``, see ``writes``).
3. Each track is resolved (``positions.track_state``, created when new) with its carried state.
   Rows later than the track's last stored position are enriched from that state (the common
   case: one write per row). Rows of a track whose batch reaches back to or before its last
   stored position are first checked against the stored rows (a file ingested twice adds
   nothing); what remains and is older than the state is a late record: that track is
   re-enriched from the state rebuilt from its last two stored rows before the late record
   (``reenrich.replay_tracks``), which gives exactly the full recompute.
4. Stored rows whose enrichment changes (the previous last row, whose ``is_fishing`` waited
   for a successor, when it did change; a track's tail after a late record) are updated in
   place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from platform_assets.positions import enrichment
from platform_assets.positions.geodesy import AnchorageIndex
from platform_assets.positions.store.adbc import copy_into, execute, frame, scalar
from platform_assets.positions.store.reenrich import replay_tracks
from platform_assets.positions.store.schema import (
    ENRICHED_COLUMNS,
    NATURAL_KEY,
    identity_codes,
    lock,
    normalise_parsed,
)
from platform_assets.positions.store.state import resolve_tracks, save_states, states_of
from platform_assets.positions.store.writes import (
    changed_rows,
    days_of,
    insert_positions,
    update_enrichment,
)

SAMPLE_ROWS = 5
SAMPLE_COLUMNS = [
    "id",
    "track_id",
    "internal_reference_number",
    "ircs",
    "external_reference_number",
    "datetime_utc",
    "latitude",
    "longitude",
    "is_at_port",
    "is_fishing",
    "time_emitting_at_sea",
]


@dataclass
class LoadResult:
    """What one load did."""

    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    late_tracks: int = 0
    updated: int = 0
    days: set[date] = field(default_factory=set)
    sample: list[dict[str, Any]] = field(default_factory=list)
    """A few of the rows written, enriched (what a dry run shows)."""

    def add(self, other: LoadResult) -> None:
        """Accumulate another batch's counts."""
        self.rows += other.rows
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.late_tracks += other.late_tracks
        self.updated += other.updated
        self.days |= other.days
        self.sample.extend(other.sample[: max(0, SAMPLE_ROWS - len(self.sample))])


def load_positions(
    conn: Any,
    parsed: pd.DataFrame,
    anchorages: pd.DataFrame | AnchorageIndex,
    *,
    normalised: bool = False,
    direct: bool = True,
    sample: bool = True,
) -> LoadResult:
    """Store a batch of parsed positions idempotently, enriched; see the module docstring.

    ``anchorages``: the ``reference.anchorages`` rows (``h3`` column at least), or their index
    built once for many batches. Runs in the caller's transaction, which must commit.
    ``direct``: new rows are copied straight into the table (``writes.insert_positions``); on
    ``writes.NaturalKeyConflict`` roll back and load again with ``direct=False``.
    ``sample``: keep a few written rows in the result (what a dry run shows).
    """
    batch = parsed if normalised else normalise_parsed(parsed)
    result = LoadResult(rows=len(batch))
    if batch.empty:
        return result
    if not isinstance(anchorages, AnchorageIndex):
        anchorages = AnchorageIndex.from_frame(anchorages)
    lock(conn)
    codes, identities = identity_codes(batch)
    tracks = resolve_tracks(conn, identities)
    batch = batch.assign(track_id=tracks["track_id"].to_numpy(dtype="int64")[codes])
    # each row's track's last stored instant (NaT for a new track)
    last_stored = pd.to_datetime(tracks["last_datetime_utc"], utc=True).dt.as_unit("us")
    last = pd.Series(last_stored.array.take(codes), index=batch.index)
    before = len(batch)
    batch = batch.drop_duplicates(NATURAL_KEY, keep="first")
    result.duplicates += before - len(batch)
    last = last.loc[batch.index]
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
        state = states_of(carried)
        enriched, new_state = enrichment.enrich(appended, anchorages, state=state)
        reemitted = ~enriched["id"].isin(appended["id"])
        inserts.append(appended.merge(enriched[~reemitted], on="id", how="inner"))
        revised = _really_revised(enriched[reemitted], state)
        updates.append(_locate_revised(conn, revised, tracks))
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
    result.inserted = insert_positions(conn, insert, direct=direct)
    result.days = days_of(insert["datetime_utc"]) if not insert.empty else set()
    result.sample = _sample(insert) if sample else []
    revised = [u for u in updates if not u.empty]
    result.updated = update_enrichment(
        conn, pd.concat(revised, ignore_index=True) if revised else pd.DataFrame()
    )
    save_states(conn, tracks, pd.concat(states, ignore_index=True))
    return result


def _sample(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The first rows written, as plain values (instants as ISO text, nulls as None)."""
    if rows.empty:
        return []
    head = rows.head(SAMPLE_ROWS).reindex(columns=SAMPLE_COLUMNS)
    head["datetime_utc"] = pd.to_datetime(head["datetime_utc"], utc=True).map(
        lambda t: t.isoformat()
    )
    return [
        {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in head.astype(object).to_dict(orient="records")
    ]


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
    instants = rows["datetime_utc"]
    found = frame(
        conn,
        "SELECT q.row_number FROM _probe q WHERE EXISTS (SELECT 1 FROM positions.positions p "
        "WHERE p.track_id = q.track_id AND p.datetime_utc = q.datetime_utc "
        "AND p.latitude = q.latitude AND p.longitude = q.longitude "
        "AND p.datetime_utc BETWEEN $1::timestamptz AND $2::timestamptz)",
        [instants.min().isoformat(), instants.max().isoformat()],
    )
    execute(conn, "DROP TABLE _probe")
    exists = np.zeros(len(rows), dtype=bool)
    exists[found["row_number"].to_numpy(dtype="int64")] = True
    return pd.Series(exists, index=rows.index)


def _really_revised(reemitted: pd.DataFrame, state: pd.DataFrame) -> pd.DataFrame:
    """The re-emitted previous last rows whose enrichment differs from what the carried state
    says is stored (only ``is_fishing`` can change: it waited for a successor). Most do not
    change (a vessel at port stays not fishing), and an unchanged row is not rewritten."""
    if reemitted.empty:
        return reemitted
    stored = state[["id", *ENRICHED_COLUMNS]].drop_duplicates("id")
    both = reemitted.merge(stored, on="id", how="left", suffixes=("", "_stored"))
    differs = np.zeros(len(both), dtype=bool)
    for column in ENRICHED_COLUMNS:
        differs |= ~_same(both[column], both[f"{column}_stored"])
    return reemitted[differs]


def _same(new: pd.Series, old: pd.Series) -> np.ndarray:
    """Element-wise equality with missing equal to missing (NaN, NA), without Python objects."""
    missing_new, missing_old = new.isna().to_numpy(), old.isna().to_numpy()
    if new.dtype.kind == "f" or old.dtype.kind == "f":
        a, b = new.to_numpy(float, na_value=np.nan), old.to_numpy(float, na_value=np.nan)
    else:
        a, b = new.to_numpy(object, na_value=None), old.to_numpy(object, na_value=None)
    with np.errstate(invalid="ignore"):
        equal = np.asarray(a == b, dtype=bool)
    return (missing_new & missing_old) | (~missing_new & ~missing_old & equal)


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
