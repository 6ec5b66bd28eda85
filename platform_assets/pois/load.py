"""The generic load: transformed records -> the `pois` tables, set-based, keyed by (source, id).

Per batch, in one transaction (`load_batch`):

1. read the batch's keys in `registered_poi` (no lock: reading does not write the rows);
2. new keys: ids are reserved from the tables' sequences in one query per table (`nextval`
   over a series, returned as runs: concurrent loads never wait on each other for ids) and the
   rows are COPYed (binary) into poi, registered_poi, address, address_poi and activity, parents
   first (references are checked at the end of each statement, migration 0016), generated while
   the COPY runs. A concurrent load that inserted the same key first makes ours fail on the
   primary key: the batch is rolled back and retried, and then sees those keys as existing;
3. keys whose content hash differs: locked (`FOR UPDATE`, in key order, so two loads cannot
   deadlock) and re-checked against the locked version (another load may have just written the
   same content); the version they replace is written to `poi_history` (valid from its
   `valid_from` to now), then poi is updated in place and its addresses and activities replaced;
4. unchanged keys: nothing is written; inactive ones that came back are reactivated.

With a `connect` factory, `load_records` loads the batches on two connections at once: while one
thread builds its rows in Python, PostgreSQL works on the other's COPY (100,000 records: 4.1-4.5 s
-> 3.5-3.7 s). Batches hold disjoint keys, so they never wait on each other.

After every batch of a full extract, `deactivate_missing` marks inactive the source's POIs whose
id the extract no longer holds (never deleted). Column lists come from the ORM tables (orm.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg import sql

from platform_assets.ops.bulk import gc_paused
from platform_assets.pois.models import RegisteredPoi
from platform_assets.pois.orm import (
    ActivityRow,
    AddressPoiRow,
    AddressRow,
    PoiRow,
    RegisteredPoiRow,
    qualified,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""A batch is retried this many times when a concurrent load wins a key (or a deadlock)."""

# COPY column lists and their binary types, named from the ORM tables
POI_COLUMNS = ("id", "kind", "name", "description", "url")
POI_TYPES = ("int8", "text", "text", "text", "text")
ADDRESS_COLUMNS = (
    "id",
    "latitude",
    "longitude",
    "street",
    "postcode",
    "city",
    "insee_code",
    "label",
)
ADDRESS_TYPES = ("int8", "float8", "float8", "text", "text", "text", "text", "text")
ADDRESS_POI_COLUMNS = ("poi_id", "address_id", "role")
ADDRESS_POI_TYPES = ("int8", "int8", "text")
ACTIVITY_COLUMNS = ("id", "poi_id", "position", "sport", "name", "distance_km", "starts_on")
ACTIVITY_TYPES = ("int8", "int8", "int2", "text", "text", "float8", "date")
REGISTERED_COLUMNS = ("source", "original_id", "poi_id", "content_hash", "raw_hash")
REGISTERED_TYPES = ("text", "text", "int8", "text", "text")


@dataclass
class LoadResult:
    """What a load wrote."""

    records: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    reactivated: int = 0
    deactivated: int = 0
    history: int = 0
    retries: int = 0
    seconds: float = 0.0
    deactivated_ids: list[str] = field(default_factory=list)

    def add(self, other: LoadResult) -> None:
        """Add another batch's counts."""
        for name in ("records", "inserted", "updated", "unchanged", "reactivated", "deactivated"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.history += other.history
        self.retries += other.retries
        self.seconds += other.seconds
        self.deactivated_ids += other.deactivated_ids

    def as_metadata(self) -> dict[str, int | float]:
        """Counts for Dagster metadata and logs."""
        return {
            "records": self.records,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "reactivated": self.reactivated,
            "deactivated": self.deactivated,
            "history_versions": self.history,
            "retried_batches": self.retries,
        }


class LoadError(RuntimeError):
    """A batch could not be loaded (names the source and the batch)."""


# --- rows -------------------------------------------------------------------------------------


RESERVE_SQL = """
SELECT min(id), max(id) FROM (
    SELECT id, id - row_number() OVER (ORDER BY id) AS island
    FROM (SELECT nextval(%s::regclass) AS id FROM generate_series(1, %s)) ids
) numbered
GROUP BY island ORDER BY 1
"""
# The ids come back as runs (min, max): mostly one run, a few when another load took ids in
# between. 400,000 ids of a 100,000-record load as rows cost more than the nextval themselves.


def _reserve(conn: psycopg.Connection, table: type, count: int) -> list[int]:
    """`count` ids from a table's sequence (never blocks another load)."""
    if count == 0:
        return []
    # the sequence is named once: `pg_get_serial_sequence` per generated row (a catalogue
    # lookup each) cost more than the 400,000 nextval of a 100,000-record load themselves
    [sequence] = conn.execute(
        "SELECT pg_get_serial_sequence(%s, 'id')", (qualified(table),)
    ).fetchone() or (None,)
    ids: list[int] = []
    for first, last in conn.execute(RESERVE_SQL, (sequence, count)):
        ids.extend(range(first, last + 1))
    return ids


def _copy_children(
    conn: psycopg.Connection, records: Sequence[RegisteredPoi], poi_ids: Sequence[int]
) -> None:
    """COPY the address, address_poi and activity rows of records whose POI ids are known.

    Rows are generated while the COPY runs, so building them overlaps PostgreSQL's work.
    """
    address_ids = _reserve(conn, AddressRow, sum(len(r.poi.addresses) for r in records))
    activity_ids = _reserve(conn, ActivityRow, sum(len(r.poi.activities) for r in records))
    links = [link for r in records for link in r.poi.addresses]
    _copy(
        conn,
        qualified(AddressRow),
        ADDRESS_COLUMNS,
        ADDRESS_TYPES,
        (
            (i, a.latitude, a.longitude, a.street, a.postcode, a.city, a.insee_code, a.label)
            for i, a in zip(address_ids, (link.address for link in links), strict=True)
        ),
    )
    link_poi_ids = (
        poi_id for r, poi_id in zip(records, poi_ids, strict=True) for _ in r.poi.addresses
    )
    _copy(
        conn,
        qualified(AddressPoiRow),
        ADDRESS_POI_COLUMNS,
        ADDRESS_POI_TYPES,
        (
            (poi_id, address_id, link.role)
            for poi_id, address_id, link in zip(link_poi_ids, address_ids, links, strict=True)
        ),
    )
    activities = (
        (poi_id, position, act)
        for r, poi_id in zip(records, poi_ids, strict=True)
        for position, act in enumerate(r.poi.activities)
    )
    _copy(
        conn,
        qualified(ActivityRow),
        ACTIVITY_COLUMNS,
        ACTIVITY_TYPES,
        (
            (i, poi_id, position, a.sport, a.name, a.distance_km, a.starts_on)
            for i, (poi_id, position, a) in zip(activity_ids, activities, strict=True)
        ),
    )


def _copy(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
) -> None:
    schema, name = table.split(".") if "." in table else (None, table)
    target = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor().copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


# --- one batch --------------------------------------------------------------------------------

HISTORY_SQL = """
INSERT INTO pois.poi_history
    (poi_id, source, original_id, content_hash, record, valid_from, valid_to)
SELECT r.poi_id, r.source, r.original_id, r.content_hash,
       jsonb_build_object(
           'kind', p.kind, 'name', p.name, 'description', p.description, 'url', p.url,
           'addresses', COALESCE((
               SELECT jsonb_agg(jsonb_build_object('role', ap.role, 'address', to_jsonb(a) - 'id')
                                ORDER BY a.id)
               FROM pois.address_poi ap JOIN pois.address a ON a.id = ap.address_id
               WHERE ap.poi_id = p.id), '[]'::jsonb),
           'activities', COALESCE((
               SELECT jsonb_agg(to_jsonb(ac) - 'id' - 'poi_id' - 'position' ORDER BY ac.position)
               FROM pois.activity ac WHERE ac.poi_id = p.id), '[]'::jsonb)
       ),
       r.valid_from, now()
FROM pois.registered_poi r JOIN pois.poi p ON p.id = r.poi_id
WHERE r.poi_id = ANY(%s)
"""


def _insert_new(conn: psycopg.Connection, records: Sequence[RegisteredPoi]) -> None:
    records = sorted(records, key=lambda r: r.original_id)  # one key order for every load
    poi_ids = _reserve(conn, PoiRow, len(records))
    # parents before children: references are checked at the end of each statement (0016)
    _copy(
        conn,
        qualified(PoiRow),
        POI_COLUMNS,
        POI_TYPES,
        (
            (poi_id, p.kind, p.name, p.description, p.url)
            for poi_id, p in zip(poi_ids, (r.poi for r in records), strict=True)
        ),
    )
    _copy(
        conn,
        qualified(RegisteredPoiRow),
        REGISTERED_COLUMNS,
        REGISTERED_TYPES,
        (
            (r.source, r.original_id, poi_id, r.content_hash, r.raw_hash)
            for r, poi_id in zip(records, poi_ids, strict=True)
        ),
    )
    _copy_children(conn, records, poi_ids)


def _update_changed(
    conn: psycopg.Connection, source: str, records: Sequence[RegisteredPoi]
) -> tuple[int, int]:
    """Replace changed records (history first); returns (updated, history rows)."""
    by_id = {r.original_id: r for r in records}
    locked = conn.execute(
        "SELECT original_id, poi_id, content_hash FROM pois.registered_poi "
        "WHERE source = %s AND original_id = ANY(%s) ORDER BY original_id FOR UPDATE",
        (source, sorted(by_id)),
    ).fetchall()
    # re-check on the locked version: a concurrent load may have written this content already
    todo = [
        (by_id[oid], poi_id)
        for oid, poi_id, current in locked
        if current != by_id[oid].content_hash
    ]
    if not todo:
        return 0, 0
    poi_ids = [poi_id for _, poi_id in todo]
    history = conn.execute(HISTORY_SQL, (poi_ids,)).rowcount
    conn.execute(
        "CREATE TEMP TABLE poi_changes (id bigint, kind text, name text, description text, "
        "url text, original_id text, content_hash text, raw_hash text) ON COMMIT DROP"
    )
    _copy(
        conn,
        "poi_changes",
        ("id", "kind", "name", "description", "url", "original_id", "content_hash", "raw_hash"),
        ("int8", "text", "text", "text", "text", "text", "text", "text"),
        (
            (
                poi_id,
                r.poi.kind,
                r.poi.name,
                r.poi.description,
                r.poi.url,
                r.original_id,
                r.content_hash,
                r.raw_hash,
            )
            for r, poi_id in todo
        ),
    )
    conn.execute(
        "UPDATE pois.poi p SET kind = c.kind, name = c.name, description = c.description, "
        "url = c.url, active = true, updated_at = now() FROM poi_changes c WHERE p.id = c.id"
    )
    conn.execute(
        "UPDATE pois.registered_poi r SET content_hash = c.content_hash, raw_hash = c.raw_hash, "
        "valid_from = now(), "
        "active = true, deactivated_at = NULL FROM poi_changes c "
        "WHERE r.source = %s AND r.original_id = c.original_id",
        (source,),
    )
    conn.execute("DROP TABLE poi_changes")
    conn.execute("DELETE FROM pois.activity WHERE poi_id = ANY(%s)", (poi_ids,))
    gone = conn.execute(
        "DELETE FROM pois.address_poi WHERE poi_id = ANY(%s) RETURNING address_id", (poi_ids,)
    ).fetchall()
    conn.execute("DELETE FROM pois.address WHERE id = ANY(%s)", ([g[0] for g in gone],))
    _copy_children(conn, [r for r, _ in todo], poi_ids)
    return len(todo), history


def _refresh_unchanged(
    conn: psycopg.Connection, source: str, records: Sequence[RegisteredPoi], reactivate: set[str]
) -> int:
    """Same content: store the new raw fingerprint, reactivate those that came back; no history."""
    if not records:
        return 0
    rows = conn.execute(
        "UPDATE pois.registered_poi r SET raw_hash = u.raw_hash, active = true, "
        "deactivated_at = NULL FROM unnest(%s::text[], %s::text[]) AS u(original_id, raw_hash) "
        "WHERE r.source = %s AND r.original_id = u.original_id RETURNING r.original_id, r.poi_id",
        ([r.original_id for r in records], [r.raw_hash for r in records], source),
    ).fetchall()
    back = [poi_id for oid, poi_id in rows if oid in reactivate]
    if back:
        conn.execute(
            "UPDATE pois.poi SET active = true, updated_at = now() WHERE id = ANY(%s)", (back,)
        )
    return len(back)


def _load_batch_once(
    conn: psycopg.Connection, source: str, records: Sequence[RegisteredPoi]
) -> LoadResult:
    result = LoadResult(records=len(records))
    existing = {
        oid: (content_hash, raw_hash, active)
        for oid, content_hash, raw_hash, active in conn.execute(
            "SELECT original_id, content_hash, raw_hash, active FROM pois.registered_poi "
            "WHERE source = %s AND original_id = ANY(%s)",
            (source, [r.original_id for r in records]),
        )
    }
    new, changed, touched, back = [], [], [], set()
    for record in records:
        known = existing.get(record.original_id)
        if known is None:
            new.append(record)
        elif known[0] != record.content_hash:
            changed.append(record)
        elif known[1] != record.raw_hash or not known[2]:
            touched.append(record)
            if not known[2]:
                back.add(record.original_id)
    if new:
        _insert_new(conn, new)
    result.inserted = len(new)
    result.updated, result.history = _update_changed(conn, source, changed) if changed else (0, 0)
    result.reactivated = _refresh_unchanged(conn, source, touched, back)
    result.unchanged = len(records) - result.inserted - result.updated - result.reactivated
    return result


def load_batch(
    conn: psycopg.Connection, source: str, records: Sequence[RegisteredPoi]
) -> LoadResult:
    """Upsert one batch of one source in one transaction (retried if a concurrent load wins).

    `conn` must be in autocommit mode (each attempt is its own transaction).
    """
    if any(r.source != source or not r.content_hash for r in records):
        raise LoadError(f"{source}: every record must be of this source and transformed (hashed)")
    if len({r.original_id for r in records}) != len(records):
        raise LoadError(f"{source}: a batch holds the same original id twice")
    started = time.perf_counter()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with conn.transaction():
                result = _load_batch_once(conn, source, records)
            result.retries = attempt - 1
            result.seconds = time.perf_counter() - started
            return result
        except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected) as exc:
            log.info("%s: batch attempt %d lost a race (%s); retrying", source, attempt, exc)
    raise LoadError(f"{source}: batch of {len(records)} records still conflicting after retries")


Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
"""Opens another autocommit connection to the same database (closed on exit)."""

LOAD_CONNECTIONS = 2


def load_records(
    conn: psycopg.Connection,
    source: str,
    records: Sequence[RegisteredPoi],
    *,
    batch_size: int = 10_000,
    seen_ids: Sequence[str] | None = None,
    connect: Connect | None = None,
) -> LoadResult:
    """Load a whole extract by batches; with `seen_ids` (every id the extract held, rejected
    records included) the source's POIs missing from it are then deactivated.

    With `connect`, batches are spread over `LOAD_CONNECTIONS` connections it opens, each batch
    still one transaction; without it (a dry run: everything in the caller's transaction), they
    run one after the other on `conn`.
    """
    total = LoadResult()
    batches = [records[start : start + batch_size] for start in range(0, len(records), batch_size)]
    with gc_paused():
        if connect is None or len(batches) < 2:
            for batch in batches:
                total.add(load_batch(conn, source, batch))
        else:
            for result in _load_on_connections(connect, source, batches):
                total.add(result)
    if seen_ids is not None:
        deactivated = deactivate_missing(conn, source, seen_ids)
        total.deactivated = len(deactivated)
        total.deactivated_ids = deactivated
    return total


def _load_on_connections(
    connect: Connect, source: str, batches: list[Sequence[RegisteredPoi]]
) -> list[LoadResult]:
    """Every batch loaded, by `LOAD_CONNECTIONS` threads with a connection each (psycopg lets
    go of the GIL while it waits on the server); the first failure is raised."""

    def load_share(share: list[Sequence[RegisteredPoi]]) -> list[LoadResult]:
        with connect() as conn:
            return [load_batch(conn, source, batch) for batch in share]

    shares = [batches[k::LOAD_CONNECTIONS] for k in range(LOAD_CONNECTIONS)]
    with ThreadPoolExecutor(LOAD_CONNECTIONS, thread_name_prefix=f"poi-load-{source}") as pool:
        futures = [pool.submit(load_share, share) for share in shares if share]
        return [result for future in futures for result in future.result()]


def deactivate_missing(conn: psycopg.Connection, source: str, seen_ids: Sequence[str]) -> list[str]:
    """Mark inactive the active POIs of `source` whose id is not in `seen_ids`; their ids.

    An empty extract deactivates nothing: it is far more likely a broken source than a source
    whose every record disappeared at once.
    """
    if not seen_ids:
        log.warning("%s: empty extract, nothing deactivated", source)
        return []
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE poi_seen (original_id text PRIMARY KEY) ON COMMIT DROP")
        _copy(conn, "poi_seen", ("original_id",), ("text",), ((i,) for i in set(seen_ids)))
        rows = conn.execute(
            "UPDATE pois.registered_poi r SET active = false, deactivated_at = now() "
            "WHERE r.source = %s AND r.active "
            "AND NOT EXISTS (SELECT 1 FROM poi_seen s WHERE s.original_id = r.original_id) "
            "RETURNING r.original_id, r.poi_id",
            (source,),
        ).fetchall()
        conn.execute(
            "UPDATE pois.poi SET active = false, updated_at = now() WHERE id = ANY(%s)",
            ([r[1] for r in rows],),
        )
    return sorted(r[0] for r in rows)


def deactivate_missing_from_extract(
    conn: psycopg.Connection, source: str, extraction_date: date
) -> list[str]:
    """`deactivate_missing` against an extraction stored in raw_extract, all in SQL."""
    with conn.transaction():
        held = conn.execute(
            "SELECT count(*) FROM pois.raw_extract WHERE source = %s AND extraction_date = %s",
            (source, extraction_date),
        ).fetchone()
        if not held or not held[0]:
            log.warning("%s: empty extraction of %s, nothing deactivated", source, extraction_date)
            return []
        rows = conn.execute(
            "UPDATE pois.registered_poi r SET active = false, deactivated_at = now() "
            "WHERE r.source = %(source)s AND r.active AND NOT EXISTS ("
            "  SELECT 1 FROM pois.raw_extract x WHERE x.source = %(source)s "
            "  AND x.extraction_date = %(day)s AND x.original_id = r.original_id) "
            "RETURNING r.original_id, r.poi_id",
            {"source": source, "day": extraction_date},
        ).fetchall()
        conn.execute(
            "UPDATE pois.poi SET active = false, updated_at = now() WHERE id = ANY(%s)",
            ([r[1] for r in rows],),
        )
    return sorted(r[0] for r in rows)
