"""SQL of the positions domain: partitions, idempotent COPY loads, quarantine, track state,
last positions and retention. No Dagster here: every function takes an open ADBC connection
(binary COPY from Arrow, Arrow results) and leaves the commit to the caller.

Loading one batch (``load_positions``), in one transaction:

1. Rows repeated inside the batch are dropped (natural key: track + datetime + coordinates).
2. The ingestion lock (a transaction advisory lock) serialises loaders, so two runs cannot
   enrich the same track from the same state; the unique natural key is the final guard
   (``INSERT ... ON CONFLICT DO NOTHING`` from a COPY-filled staging table).
3. Each track is resolved (``positions.track_state``, created when new) with its carried state.
   Rows later than the track's last stored position are enriched from that state (the common
   case: one write per row). Rows of a track whose batch reaches back to or before its last
   stored position are first checked against the stored rows (a file ingested twice adds
   nothing); what remains and is older than the state is a late record: that track is
   re-enriched from its last at-port position before the late record (at port the carried
   state is empty: time at sea 0, no fishing run, so starting there gives exactly the full
   recompute), or from its first position when it has not been at port since.
4. Stored rows whose enrichment changes (the previous last row, whose ``is_fishing`` waited
   for a successor; a track's tail after a late record) are updated in place.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from platform_assets.positions import enrichment, naf
from platform_assets.positions.inbox import LineBatch

log = logging.getLogger(__name__)

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
INGEST_LOCK = "positions.ingest"
PARTITION_NAME = re.compile(r"^positions_(\d{8})$")
_NULL_SENTINEL = "\x01"  # joins identities with nulls equal (no identifier holds U+0001)


class PositionsStoreError(RuntimeError):
    """A batch could not be stored; the message names the file or the track."""


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


# --- small helpers on ADBC -----------------------------------------------------------------


def _execute(conn: Any, sql: str, params: Sequence[Any] | None = None) -> None:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
    finally:
        cur.close()


def _rows(conn: Any, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        cur.close()


def _frame(conn: Any, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        table = cur.fetch_arrow_table()
    finally:
        cur.close()
    return table.to_pandas(types_mapper=_types_mapper)


def _types_mapper(dtype: pa.DataType) -> Any:
    if pa.types.is_boolean(dtype):
        return pd.BooleanDtype()
    if pa.types.is_integer(dtype):
        return pd.Int64Dtype()
    return None


def _copy_into(conn: Any, table: str, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    """Binary COPY of ``frame[columns]`` into an existing (temporary) table."""
    if frame.empty:
        return
    arrow = pa.Table.from_pandas(frame[list(columns)], preserve_index=False)
    cur = conn.cursor()
    try:
        cur.adbc_ingest(table, arrow, mode="append", db_schema_name="pg_temp")
    finally:
        cur.close()


def _scalar(conn: Any, sql: str, params: Sequence[Any] | None = None) -> Any:
    rows = _rows(conn, sql, params)
    return rows[0][0] if rows else None


# --- partitions and retention --------------------------------------------------------------


def partition_days(conn: Any) -> list[date]:
    """Days that have a partition of positions.positions, oldest first."""
    rows = _rows(
        conn,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'positions.positions'::regclass",
    )
    days = []
    for (name,) in rows:
        match = PARTITION_NAME.match(name)
        if match:
            days.append(datetime.strptime(match.group(1), "%Y%m%d").date())
    return sorted(days)


def ensure_partitions(conn: Any, days: Iterable[date]) -> list[str]:
    """Create the daily partitions of these days when missing; their names."""
    return [
        str(_scalar(conn, "SELECT positions.ensure_partition($1::date)", [day.isoformat()]))
        for day in sorted(set(days))
    ]


def ensure_partitions_ahead(conn: Any, today: date, days_ahead: int) -> list[str]:
    """Partitions from today to ``days_ahead`` days after it (the scheduled job's work)."""
    return ensure_partitions(conn, (today + timedelta(days=n) for n in range(days_ahead + 1)))


def drop_partitions_before(conn: Any, cutoff: date) -> list[date]:
    """Detach and drop every daily partition of a day before ``cutoff``; the days dropped.

    Whole partitions go (no DELETE, no bloat). ``positions.last_positions`` and the track
    states are separate tables: a vessel whose positions were all dropped keeps its last one.
    """
    dropped = []
    for day in partition_days(conn):
        if day >= cutoff:
            break
        name = f"positions_{day:%Y%m%d}"
        _execute(conn, f"ALTER TABLE positions.positions DETACH PARTITION positions.{name}")
        _execute(conn, f"DROP TABLE positions.{name}")
        dropped.append(day)
    return dropped


def apply_retention(conn: Any, today: date, retention_days: int) -> list[date]:
    """Drop the partitions of days older than ``retention_days`` before ``today``."""
    if retention_days < 1:
        raise ValueError(f"POSITIONS_RETENTION_DAYS must be >= 1, got {retention_days}")
    return drop_partitions_before(conn, today - timedelta(days=retention_days))


# --- quarantine ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantinedLine:
    """A NAF line that could not be parsed, as received."""

    source_file: str
    line_number: int
    raw: bytes
    error: str


def quarantine(conn: Any, items: Sequence[QuarantinedLine]) -> int:
    """Store bad lines; a line already there (same file, number, bytes) counts one more attempt."""
    if not items:
        return 0
    import hashlib

    frame = pd.DataFrame(
        {
            "source_file": [i.source_file for i in items],
            "line_number": pa.array([i.line_number for i in items], pa.int32()),
            "line": [i.raw.decode("utf-8", "replace").replace("\x00", "\ufffd") for i in items],
            "raw_bytes": pa.array([i.raw for i in items], pa.binary()),
            "raw_sha256": [hashlib.sha256(i.raw).hexdigest() for i in items],
            "error": [i.error for i in items],
        }
    )
    _execute(
        conn,
        "CREATE TEMP TABLE _quarantine_in (source_file text, line_number integer, line text, "
        "raw_bytes bytea, raw_sha256 text, error text) ON COMMIT DROP",
    )
    arrow = pa.table(
        {
            "source_file": pa.array(frame["source_file"].tolist(), pa.string()),
            "line_number": pa.array([i.line_number for i in items], pa.int32()),
            "line": pa.array(frame["line"].tolist(), pa.string()),
            "raw_bytes": pa.array([i.raw for i in items], pa.binary()),
            "raw_sha256": pa.array(frame["raw_sha256"].tolist(), pa.string()),
            "error": pa.array(frame["error"].tolist(), pa.string()),
        }
    )
    cur = conn.cursor()
    try:
        cur.adbc_ingest("_quarantine_in", arrow, mode="append", db_schema_name="pg_temp")
    finally:
        cur.close()
    _execute(
        conn,
        """
        INSERT INTO positions.naf_quarantine
            (source_file, line_number, line, raw_bytes, raw_sha256, error)
        SELECT DISTINCT ON (source_file, line_number, raw_sha256)
               source_file, line_number, line, raw_bytes, raw_sha256, error
        FROM _quarantine_in
        ON CONFLICT (source_file, line_number, raw_sha256) DO UPDATE
        SET error = EXCLUDED.error, attempts = positions.naf_quarantine.attempts + 1,
            last_attempt_at = now()
        """,
    )
    _execute(conn, "DROP TABLE _quarantine_in")
    return len(items)


def quarantined_lines(conn: Any, limit: int | None = None) -> pd.DataFrame:
    """The quarantine (id, file, line number, raw bytes, error), oldest first."""
    suffix = f" LIMIT {int(limit)}" if limit else ""
    return _frame(
        conn,
        "SELECT id, source_file, line_number, raw_bytes, error, attempts "
        f"FROM positions.naf_quarantine ORDER BY source_file, line_number, id{suffix}",
    )


def release_quarantined(conn: Any, ids: Sequence[int]) -> None:
    """Remove lines from the quarantine (they were stored by a replay)."""
    for start in range(0, len(ids), 10_000):
        chunk = ",".join(str(int(i)) for i in ids[start : start + 10_000])
        _execute(conn, f"DELETE FROM positions.naf_quarantine WHERE id IN ({chunk})")


def record_failed_attempt(conn: Any, failures: Sequence[tuple[int, str]]) -> None:
    """A replayed line still fails: keep it, with its new error and one more attempt."""
    for row_id, error in failures:
        _execute(
            conn,
            "UPDATE positions.naf_quarantine SET error = $1, attempts = attempts + 1, "
            "last_attempt_at = now() WHERE id = $2",
            [error, int(row_id)],
        )


# --- track state ---------------------------------------------------------------------------


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
        return enrichment_empty_state()
    frame = pd.DataFrame.from_records(records)
    for column, dtype in enrichment.STATE_DTYPES.items():
        if column not in frame.columns or column in IDENTITY:
            continue
        if dtype.startswith("datetime64"):
            frame[column] = pd.to_datetime(frame[column], utc=True).astype(dtype)
        elif dtype == "float64":
            frame[column] = pd.to_numeric(frame[column]).astype(dtype)
        else:
            frame[column] = frame[column].astype(dtype)
    return frame


def enrichment_empty_state() -> pd.DataFrame:
    """No carried state (every track starts fresh)."""
    return enrichment.empty_state()


# --- loading -------------------------------------------------------------------------------


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
    for column in (c for c in RAW_COLUMNS if c not in _TYPED):
        out[column] = out[column].astype("string")
    return out


_TYPED = {"datetime_utc", "latitude", "longitude", "speed", "course", "is_manual"}


def _lock(conn: Any) -> None:
    _execute(conn, "SELECT pg_advisory_xact_lock(hashtext($1))", [INGEST_LOCK])


def _identity_key(frame: pd.DataFrame) -> pd.Series:
    parts = [frame[c].astype("string").fillna(_NULL_SENTINEL) for c in IDENTITY]
    return parts[0].str.cat(parts[1:], sep="\x02")


def resolve_tracks(conn: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """track_id, last stored datetime/id and carried state of every identity in ``frame``,
    creating missing tracks."""
    identities = frame[IDENTITY].drop_duplicates().reset_index(drop=True)
    _execute(
        conn,
        "CREATE TEMP TABLE _identities (internal_reference_number text, "
        "external_reference_number text, ircs text) ON COMMIT DROP",
    )
    _copy_into(conn, "_identities", identities, IDENTITY)
    _execute(
        conn,
        f"INSERT INTO positions.track_state ({', '.join(IDENTITY)}) "
        f"SELECT {', '.join(IDENTITY)} FROM _identities "
        f"ORDER BY {', '.join(IDENTITY)} ON CONFLICT DO NOTHING",
    )
    join = " AND ".join(
        f"coalesce(t.{c}, '{_NULL_SENTINEL}') = coalesce(i.{c}, '{_NULL_SENTINEL}')"
        for c in IDENTITY
    )
    tracks = _frame(
        conn,
        f"SELECT t.track_id, {', '.join('t.' + c for c in IDENTITY)}, t.last_position_id, "
        f"t.last_datetime_utc, t.state::text AS state "
        f"FROM _identities i JOIN positions.track_state t ON {join}",
    )
    _execute(conn, "DROP TABLE _identities")
    return tracks


def reserve_ids(conn: Any, count: int) -> np.ndarray:
    """``count`` new position ids (a block of the sequence; safe under the ingestion lock)."""
    if count == 0:
        return np.empty(0, dtype="int64")
    first = int(_scalar(conn, "SELECT nextval('positions.positions_id_seq')"))
    if count > 1:
        _execute(
            conn, "SELECT setval('positions.positions_id_seq', $1::bigint)", [first + count - 1]
        )
    return np.arange(first, first + count, dtype="int64")


def _existing_keys(conn: Any, rows: pd.DataFrame) -> pd.Series:
    """For each row (natural key columns), whether positions.positions already holds it."""
    if rows.empty:
        return pd.Series([], dtype=bool)
    probe = rows[NATURAL_KEY].copy()
    probe["row_number"] = np.arange(len(probe), dtype="int64")
    _execute(
        conn,
        "CREATE TEMP TABLE _probe (track_id bigint, datetime_utc timestamptz, "
        "latitude double precision, longitude double precision, row_number bigint) "
        "ON COMMIT DROP",
    )
    _copy_into(conn, "_probe", probe, [*NATURAL_KEY, "row_number"])
    found = _frame(
        conn,
        "SELECT q.row_number FROM _probe q WHERE EXISTS (SELECT 1 FROM positions.positions p "
        "WHERE p.track_id = q.track_id AND p.datetime_utc = q.datetime_utc "
        "AND p.latitude = q.latitude AND p.longitude = q.longitude)",
    )
    _execute(conn, "DROP TABLE _probe")
    exists = np.zeros(len(rows), dtype=bool)
    exists[found["row_number"].to_numpy(dtype="int64")] = True
    return pd.Series(exists, index=rows.index)


def _replay_tracks(
    conn: Any, first_new: pd.DataFrame, new_rows: pd.DataFrame, anchorages: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Re-enrich tracks from just before an instant: the state rebuilt from each track's last
    two stored rows at or before ``first_new`` (new rows have larger ids, so stored rows of the
    same instant precede them), then its stored rows after it plus ``new_rows``.

    Returns (enriched, new state, the stored rows read: what the enrichment may revise)."""
    _execute(
        conn, "CREATE TEMP TABLE _late (track_id bigint, first_new timestamptz) ON COMMIT DROP"
    )
    _copy_into(conn, "_late", first_new, ["track_id", "first_new"])
    columns = ", ".join("p." + c for c in POSITION_COLUMNS)
    before = _frame(
        conn,
        f"SELECT {columns} FROM _late l CROSS JOIN LATERAL (SELECT * FROM positions.positions p "
        "WHERE p.track_id = l.track_id AND p.datetime_utc <= l.first_new "
        "ORDER BY p.datetime_utc DESC, p.id DESC LIMIT 2) p",
    )
    after = _frame(
        conn,
        f"SELECT {columns} FROM _late l JOIN positions.positions p "
        "ON p.track_id = l.track_id AND p.datetime_utc > l.first_new",
    )
    _execute(conn, "DROP TABLE _late")
    state = (
        enrichment.state_from_enriched(_typed_stored(before))
        if not before.empty
        else enrichment.empty_state()
    )
    tail = _as_batch_types(_typed_stored(after)) if not after.empty else after
    combined = pd.concat([tail, new_rows], ignore_index=True) if not tail.empty else new_rows
    enriched, new_state = _enrich(combined, anchorages, state)
    stored = pd.concat([before, after], ignore_index=True)
    return enriched, new_state, _typed_stored(stored)


def _typed_stored(stored: pd.DataFrame) -> pd.DataFrame:
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


def _enrich(
    rows: pd.DataFrame, anchorages: pd.DataFrame, state: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    enriched, new_state = enrichment.enrich(rows, anchorages, state=state)
    return enriched, new_state


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
    _lock(conn)
    tracks = resolve_tracks(conn, batch)
    key = _identity_key(batch)
    track_key = _identity_key(tracks)
    batch = batch.assign(track_id=key.map(dict(zip(track_key, tracks["track_id"], strict=True))))
    before = len(batch)
    batch = batch.drop_duplicates(NATURAL_KEY, keep="first")
    result.duplicates += before - len(batch)

    last_by_track = dict(
        zip(tracks["track_id"], pd.to_datetime(tracks["last_datetime_utc"], utc=True), strict=True)
    )
    last = pd.to_datetime(batch["track_id"].map(last_by_track), utc=True)
    reaches_back = last.notna() & (batch["datetime_utc"] <= last)
    suspect_tracks = set(batch.loc[reaches_back, "track_id"])
    in_suspect = batch["track_id"].isin(suspect_tracks)
    if suspect_tracks:
        existing = _existing_keys(conn, batch[in_suspect])
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
        enriched, new_state = _enrich(appended, anchorages, state)
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
        enriched, new_state, stored = _replay_tracks(conn, first_new, late, anchorages)
        new_ids = set(late["id"])
        inserts.append(late.merge(enriched, on="id", how="inner"))
        updates.append(_changed(stored, enriched[~enriched["id"].isin(new_ids)]))
        states.append(new_state)

    insert = pd.concat(inserts, ignore_index=True) if inserts else pd.DataFrame()
    result.inserted = _insert(conn, insert)
    result.days = set(insert["datetime_utc"].dt.date) if not insert.empty else set()
    update = (
        pd.concat([u for u in updates if not u.empty], ignore_index=True)
        if any(not u.empty for u in updates)
        else pd.DataFrame()
    )
    result.updated = _update(conn, update)
    _save_states(conn, tracks, pd.concat(states, ignore_index=True), batch)
    return result


def _as_batch_types(stored: pd.DataFrame) -> pd.DataFrame:
    stored = stored.copy()
    stored["datetime_utc"] = pd.to_datetime(stored["datetime_utc"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    stored["id"] = stored["id"].astype("int64")
    stored["track_id"] = stored["track_id"].astype("int64")
    stored["is_manual"] = stored["is_manual"].fillna(False).astype(bool)
    return stored.drop(columns=[c for c in ENRICHED_COLUMNS if c in stored.columns])


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
        found = _frame(
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


def _changed(stored: pd.DataFrame, revised: pd.DataFrame) -> pd.DataFrame:
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


def _insert_frame(frame: pd.DataFrame) -> pd.DataFrame:
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
        if column not in _TYPED:
            out[column] = out[column].astype("string")
    return out


def _insert(conn: Any, frame: pd.DataFrame) -> int:
    """COPY into a staging table, then INSERT ... ON CONFLICT DO NOTHING; rows inserted."""
    if frame.empty:
        return 0
    frame = _insert_frame(frame)
    ensure_partitions(conn, set(frame["datetime_utc"].dt.date) - set(partition_days(conn)))
    _execute(
        conn,
        "CREATE TEMP TABLE _positions_new (LIKE positions.positions) ON COMMIT DROP",
    )
    _copy_into(conn, "_positions_new", frame, POSITION_COLUMNS)
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
    _execute(conn, "DROP TABLE _positions_new")
    return int(inserted)


def _update(conn: Any, frame: pd.DataFrame) -> int:
    """Write revised enrichment of stored rows (reached by track, instant and id)."""
    if frame.empty:
        return 0
    frame = _insert_frame(frame)
    columns = ["id", "track_id", "datetime_utc", *ENRICHED_COLUMNS]
    _execute(
        conn,
        "CREATE TEMP TABLE _positions_upd ON COMMIT DROP AS "
        f"SELECT {', '.join(columns)} FROM positions.positions WITH NO DATA",
    )
    _copy_into(conn, "_positions_upd", frame, columns)
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
    _execute(conn, "DROP TABLE _positions_upd")
    return int(updated)


def _save_states(
    conn: Any, tracks: pd.DataFrame, states: pd.DataFrame, batch: pd.DataFrame
) -> None:
    """Store each touched track's new state with its last stored position."""
    if states.empty:
        return
    key = _identity_key(tracks)
    by_identity = dict(zip(key, tracks["track_id"], strict=True))
    states = states.assign(track_id=_identity_key(states).map(by_identity))
    states = states[states["track_id"].notna()]
    ends = _frame_last_rows(batch)
    payload = pd.DataFrame(
        {
            "track_id": states["track_id"].astype("int64").to_numpy(),
            "state": encode_states(states.drop(columns=["track_id"])),
        }
    ).merge(ends, on="track_id", how="left")
    _execute(
        conn,
        "CREATE TEMP TABLE _states (track_id bigint, state text, last_position_id bigint, "
        "last_datetime_utc timestamptz) ON COMMIT DROP",
    )
    _copy_into(
        conn, "_states", payload, ["track_id", "state", "last_position_id", "last_datetime_utc"]
    )
    _execute(
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
    _execute(conn, "DROP TABLE _states")


def _frame_last_rows(batch: pd.DataFrame) -> pd.DataFrame:
    ordered = batch.sort_values(["track_id", "datetime_utc", "id"], kind="stable")
    ends = ordered.groupby("track_id", as_index=False).last()[["track_id", "id", "datetime_utc"]]
    return ends.rename(columns={"id": "last_position_id", "datetime_utc": "last_datetime_utc"})


# --- reading -------------------------------------------------------------------------------


def read_anchorages(conn: Any) -> pd.DataFrame:
    """The reference domain's anchorage cells (``h3``, ``port_locode``)."""
    return _frame(conn, "SELECT h3, port_locode FROM reference.anchorages ORDER BY h3")


def read_positions(
    conn: Any, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Stored positions in [start, end) (all when unbounded), ordered by track, time, id."""
    where, params = [], []
    if start is not None:
        params.append(start.isoformat())
        where.append(f"datetime_utc >= ${len(params)}::timestamptz")
    if end is not None:
        params.append(end.isoformat())
        where.append(f"datetime_utc < ${len(params)}::timestamptz")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return _frame(
        conn,
        f"SELECT {', '.join(POSITION_COLUMNS)} FROM positions.positions{clause} "
        "ORDER BY track_id, datetime_utc, id",
        params or None,
    )


def count_positions(conn: Any, start: datetime | None = None, end: datetime | None = None) -> int:
    """Rows of positions.positions in [start, end)."""
    where, params = [], []
    if start is not None:
        params.append(start.isoformat())
        where.append(f"datetime_utc >= ${len(params)}::timestamptz")
    if end is not None:
        params.append(end.isoformat())
        where.append(f"datetime_utc < ${len(params)}::timestamptz")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return int(_scalar(conn, f"SELECT count(*) FROM positions.positions{clause}", params or None))


def reenrich_since(conn: Any, since: datetime, anchorages: pd.DataFrame) -> int:
    """Recompute the enrichment of every track with positions at or after ``since``, continuing
    from its stored rows before ``since`` (a backfill after the anchorages changed); rows whose
    values changed are updated. Returns that number."""
    _lock(conn)
    first = _frame(
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
    enriched, new_state, stored = _replay_tracks(conn, first, _as_batch_types(empty), anchorages)
    changed = _changed(stored, enriched)
    updated = _update(conn, changed)
    identities = _frame(
        conn,
        f"SELECT track_id, {', '.join(IDENTITY)} FROM positions.track_state "
        "WHERE track_id IN (SELECT track_id FROM positions.positions "
        "WHERE datetime_utc >= $1::timestamptz)",
        [since.isoformat()],
    )
    identities["track_id"] = identities["track_id"].astype("int64")
    _save_states(conn, identities, new_state, stored)
    return updated


# --- last positions ------------------------------------------------------------------------


def last_positions_inputs(conn: Any, now: datetime, window_minutes: int = 1440) -> pd.DataFrame:
    """The two latest positions of each track in the window (now - window, now + 1 day): all
    that emission periods and the latest position need, read from one or two partitions."""
    return _frame(
        conn,
        f"""
        SELECT {", ".join(POSITION_COLUMNS)} FROM (
            SELECT p.*, row_number() OVER (
                PARTITION BY track_id ORDER BY datetime_utc DESC, id DESC) AS recency
            FROM positions.positions p
            WHERE datetime_utc > $1::timestamptz - make_interval(mins => $2::int)
              AND datetime_utc < $1::timestamptz + interval '1 day'
        ) ranked WHERE recency <= 2
        """,
        [now.isoformat(), window_minutes],
    )


def read_vessels(conn: Any) -> pd.DataFrame:
    """The vessel register's identity columns."""
    return _frame(
        conn,
        "SELECT vessel_id, cfr, ircs, external_immatriculation, vessel_name, flag_state "
        "FROM reference.vessels",
    )


def read_last_positions(conn: Any) -> pd.DataFrame:
    """positions.last_positions as stored."""
    return _frame(conn, f"SELECT {', '.join(LAST_POSITION_COLUMNS)} FROM positions.last_positions")


def refresh_last_positions(conn: Any, now: datetime) -> int:
    """Recompute last positions at ``now`` and replace the table in this transaction; tracks
    without a position in the window keep their stored row. Returns the row count."""
    # imported here: the pure module is only needed by this step
    from platform_assets.positions import last_positions as last_positions_module

    positions = last_positions_inputs(conn, now)
    vessels = read_vessels(conn)
    previous = read_last_positions(conn)
    previous = previous.rename(columns={"is_manual": "is_manual"})
    frame = last_positions_module.last_positions(positions, vessels, now, previous=previous)
    # the pure function has no track_id: the chosen position (new or kept) gives it
    tracks_by_id = pd.concat(
        [positions[["id", "track_id"]], previous[["id", "track_id"]]], ignore_index=True
    ).drop_duplicates("id")
    frame = frame.drop(columns=["track_id"], errors="ignore").merge(
        tracks_by_id.astype("int64"), on="id", how="left"
    )
    out = frame.reset_index(drop=True).reindex(columns=LAST_POSITION_COLUMNS)
    out["last_position_datetime_utc"] = pd.to_datetime(
        out["last_position_datetime_utc"], utc=True
    ).astype("datetime64[us, UTC]")
    for column in ("track_id", "id", "vessel_id"):
        out[column] = pd.to_numeric(out[column]).astype("Int64")
    for column in ("is_manual", "is_at_port", "is_fishing"):
        out[column] = out[column].astype("boolean")
    for column in (
        "latitude",
        "longitude",
        "speed",
        "course",
        "emission_period_s",
        "time_emitting_at_sea",
        "estimated_current_latitude",
        "estimated_current_longitude",
    ):
        out[column] = pd.to_numeric(out[column]).astype("float64")
    for column in (
        "cfr",
        "external_immatriculation",
        "ircs",
        "vessel_name",
        "flag_state",
        "vessel_identifier",
    ):
        out[column] = out[column].astype("string")
    _execute(conn, "DELETE FROM positions.last_positions")
    _execute(
        conn,
        "CREATE TEMP TABLE _last_in (LIKE positions.last_positions INCLUDING DEFAULTS) "
        "ON COMMIT DROP",
    )
    _copy_into(conn, "_last_in", out, LAST_POSITION_COLUMNS)
    columns = ", ".join(LAST_POSITION_COLUMNS)
    _execute(
        conn,
        f"INSERT INTO positions.last_positions ({columns}) SELECT {columns} FROM _last_in",
    )
    _execute(conn, "DROP TABLE _last_in")
    return len(out)


def utc_now() -> datetime:
    """The current instant, UTC."""
    return datetime.now(UTC)


# --- files and replay ----------------------------------------------------------------------


@dataclass
class IngestResult:
    """What ingesting lines (a file, a replay) did."""

    load: LoadResult = field(default_factory=LoadResult)
    lines: int = 0
    quarantined: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        """Accumulate another batch."""
        self.load.add(other.load)
        self.lines += other.lines
        self.quarantined += other.quarantined
        self.errors.extend(other.errors[: max(0, 20 - len(self.errors))])


def ingest_batch(
    conn: Any, source_file: str, batch: LineBatch, anchorages: pd.DataFrame
) -> IngestResult:
    """Parse one batch of a file's lines, quarantine the bad ones, store the rest."""
    frame, errors = naf.parse_lines(batch.lines, first_line_number=batch.first_line)
    bad = [
        QuarantinedLine(
            source_file, e.line_number, batch.raw(e.line_number - batch.first_line), e.message
        )
        for e in errors
    ]
    bad += [
        QuarantinedLine(source_file, batch.first_line + index, raw, "line is not valid UTF-8")
        for index, raw in batch.undecodable.items()
    ]
    result = IngestResult(lines=len(batch.lines))
    result.quarantined = quarantine(conn, bad)
    result.errors = [f"{source_file}:{b.line_number}: {b.error}" for b in bad[:20]]
    result.load = load_positions(conn, frame, anchorages)
    return result


@dataclass
class ReplayResult:
    """What a quarantine replay did."""

    replayed: int = 0
    still_failing: int = 0
    load: LoadResult = field(default_factory=LoadResult)


def replay_quarantine(conn: Any, anchorages: pd.DataFrame) -> ReplayResult:
    """Parse the quarantined lines again; store and release those that now parse."""
    rows = quarantined_lines(conn)
    result = ReplayResult()
    if rows.empty:
        return result
    lines: list[str] = []
    decode_errors: dict[int, str] = {}
    for index, raw in enumerate(rows["raw_bytes"]):
        try:
            lines.append(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError:
            lines.append("")
            decode_errors[index] = "line is not valid UTF-8"
    # numbering lines 0..n-1 maps each result back to its quarantine row
    frame, errors = naf.parse_lines(lines, first_line_number=0)
    failing = {e.line_number: e.message for e in errors}
    failing.update(decode_errors)
    blank = {i for i, line in enumerate(lines) if not line.strip() and i not in failing}
    failing.update({i: "blank line" for i in blank})
    ids = rows["id"].astype("int64").to_numpy()
    result.load = load_positions(conn, frame, anchorages)
    released = [int(ids[i]) for i in range(len(ids)) if i not in failing]
    release_quarantined(conn, released)
    record_failed_attempt(conn, [(int(ids[i]), message) for i, message in failing.items()])
    result.replayed = len(released)
    result.still_failing = len(failing)
    return result
