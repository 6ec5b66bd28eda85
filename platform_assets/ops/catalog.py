"""The ingestion catalog (`ops.catalog`): what every ingestion took, and what incremental runs skip.

One row per item: (repository, source, identifier, sub_identifier, collection_date) is its key,
e.g. ("logbook", "inbox", "ers_2026-11-30.zip", <sha256>, None) or
("pois", "osm", "brittany.pbf", "", 2026-12-01). Record an item in the same transaction as the
data it covers, so the catalog never claims what a rolled-back run did not store.

Two concurrent ingests of one item: the record of the run that stored something (`rows_written`
> 0) stands; a run that stored nothing only moves `last_seen_at` (issue #20).

Example, the compare loop of an ingestion (one transaction per item)::

    from platform_assets.ops.catalog import CatalogItem, pending, record_item

    candidates = [CatalogItem("pois", "osm", f.name, content_hash=f.sha256, location=str(f))
                  for f in listing]
    with warehouse.connect() as conn:
        todo = pending(conn, candidates, force=config.force)
    for item in todo:
        with warehouse.connect() as conn:
            written = load(conn, item)  # the domain's own store function
            record_item(conn, item.stored(written, run_id=context.run_id, details={...}))
            dry.finish(conn)  # commit, or roll back under dry run (ops.dry_run)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    import psycopg


Status = Literal["done", "partial", "failed"]
DONE_STATUSES: tuple[Status, ...] = ("done", "partial")
"""A 'partial' item is not ingested again: what failed in it waits in its domain's quarantine."""

LEGACY_SOURCE = "inbox"
"""The source of items recorded through `record_ingested` (the file inboxes)."""


class ItemKey(NamedTuple):
    """The identity of a catalog item within a (repository, source)."""

    identifier: str
    sub_identifier: str = ""
    collection_date: date | None = None


@dataclass(frozen=True)
class CatalogItem:
    """One ingested (or to be ingested) item: its key, where it came from, what was stored."""

    repository: str
    source: str
    identifier: str
    sub_identifier: str = ""
    collection_date: date | None = None
    location: str | None = None
    """Path or object key, for people."""
    content_hash: str | None = None
    """When set, an item whose catalog hash differs is pending again (its content changed)."""
    size_bytes: int | None = None
    status: Status = "done"
    rows_written: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None

    @property
    def key(self) -> ItemKey:
        """Its identity within (repository, source)."""
        return ItemKey(self.identifier, self.sub_identifier, self.collection_date)

    def stored(
        self,
        rows_written: int,
        *,
        run_id: str | None,
        details: Mapping[str, Any] | None = None,
        status: Status = "done",
    ) -> CatalogItem:
        """The same item once a run stored it: what to pass to `record_item`."""
        return dataclasses.replace(
            self,
            rows_written=rows_written,
            run_id=run_id,
            details=dict(details or {}),
            status=status,
        )


_UPSERT = """
INSERT INTO ops.catalog AS c (repository, source, identifier, sub_identifier, collection_date,
                              location, content_hash, size_bytes, status, rows_written, details,
                              run_id, last_seen_run_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)
ON CONFLICT ON CONSTRAINT catalog_item_key DO UPDATE SET
    -- a run that stored nothing keeps the record of one that stored something (issue #20)
    location = CASE WHEN {wins} THEN EXCLUDED.location ELSE c.location END,
    content_hash = CASE WHEN {wins} THEN EXCLUDED.content_hash ELSE c.content_hash END,
    size_bytes = CASE WHEN {wins} THEN EXCLUDED.size_bytes ELSE c.size_bytes END,
    status = CASE WHEN {wins} THEN EXCLUDED.status ELSE c.status END,
    rows_written = CASE WHEN {wins} THEN EXCLUDED.rows_written ELSE c.rows_written END,
    details = CASE WHEN {wins} THEN EXCLUDED.details ELSE c.details END,
    run_id = CASE WHEN {wins} THEN EXCLUDED.run_id ELSE c.run_id END,
    ingested_at = CASE WHEN {wins} THEN now() ELSE c.ingested_at END,
    last_seen_at = now(),
    last_seen_run_id = EXCLUDED.last_seen_run_id
RETURNING (xmax = 0) AS inserted, run_id IS NOT DISTINCT FROM %s AS stands
""".format(
    # the newcomer wins when it stored something, when the standing record stored nothing, or
    # when the content changed (a new version of the item replaces the old one's record)
    wins="(EXCLUDED.rows_written > 0 OR c.rows_written = 0 "
    "OR EXCLUDED.content_hash IS DISTINCT FROM c.content_hash)"
)


def _upsert_params(item: CatalogItem) -> tuple[Any, ...]:
    return (
        item.repository,
        item.source,
        item.identifier,
        item.sub_identifier,
        item.collection_date,
        item.location,
        item.content_hash,
        item.size_bytes,
        item.status,
        int(item.rows_written),
        json.dumps(dict(item.details), default=str),
        item.run_id,
        item.run_id,
        item.run_id,
    )


def record_item(conn: psycopg.Connection, item: CatalogItem) -> bool:
    """Upsert an item in the caller's transaction; True when its record is the one that stands."""
    row = conn.execute(_UPSERT, _upsert_params(item)).fetchone()
    return bool(row and row[1])


def record_items(conn: psycopg.Connection, items: Iterable[CatalogItem]) -> int:
    """Upsert many items in the caller's transaction (a harvest's chunk: one pipelined batch,
    not one round trip per item), with `record_item`'s rules; how many were given."""
    params = [_upsert_params(item) for item in items]
    if params:
        with conn.cursor() as cur:
            cur.executemany(_UPSERT, params)
    return len(params)


def done_items(
    conn: psycopg.Connection,
    repository: str,
    source: str,
    keys: Iterable[ItemKey | str] | None = None,
    *,
    since: date | None = None,
    statuses: Sequence[Status] = DONE_STATUSES,
) -> dict[ItemKey, str | None]:
    """The items of (repository, source) the catalog holds as done, with their content hash.

    Restricted to `keys` when given (a bare string is an identifier with the default sub-identifier
    and no date), and to collection dates on or after `since` when given.
    """
    sql = [
        "SELECT c.identifier, c.sub_identifier, c.collection_date, c.content_hash "
        "FROM ops.catalog c"
    ]
    params: list[Any] = []
    if keys is not None:
        wanted = [ItemKey(k) if isinstance(k, str) else ItemKey(*k) for k in keys]
        if not wanted:
            return {}
        sql.append(
            "JOIN unnest(%s::text[], %s::text[], %s::date[]) AS k(identifier, sub, day) "
            "ON c.identifier = k.identifier AND c.sub_identifier = k.sub "
            "AND c.collection_date IS NOT DISTINCT FROM k.day"
        )
        params += [
            [k.identifier for k in wanted],
            [k.sub_identifier for k in wanted],
            [k.collection_date for k in wanted],
        ]
    sql.append("WHERE c.repository = %s AND c.source = %s AND c.status = ANY(%s)")
    params += [repository, source, list(statuses)]
    if since is not None:
        sql.append("AND c.collection_date >= %s")
        params.append(since)
    rows = conn.execute(" ".join(sql), params).fetchall()
    return {ItemKey(r[0], r[1], r[2]): r[3] for r in rows}


def pending(
    conn: psycopg.Connection, candidates: Iterable[CatalogItem], *, force: bool = False
) -> list[CatalogItem]:
    """The candidates still to ingest, in their order: all with `force`; else those the catalog
    does not hold as done, or holds with another content hash (their content changed)."""
    items = list(candidates)
    if force or not items:
        return items
    done: dict[tuple[str, str], dict[ItemKey, str | None]] = {}
    for repository, source in dict.fromkeys((i.repository, i.source) for i in items):
        keys = [i.key for i in items if (i.repository, i.source) == (repository, source)]
        done[(repository, source)] = done_items(conn, repository, source, keys)
    todo = []
    for item in items:
        known = done[(item.repository, item.source)]
        if (
            item.key not in known
            or item.content_hash is not None
            and known[item.key] != item.content_hash
        ):
            todo.append(item)
    return todo


# --- the first API (file inboxes keyed by content hash), kept for its callers ----------------


def ingested_hashes(conn: psycopg.Connection, domain: str, hashes: Iterable[str]) -> set[str]:
    """Which of these content hashes the catalog already holds (done or partial) for a domain."""
    wanted = list(hashes)
    if not wanted:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT content_hash FROM ops.catalog "
        "WHERE repository = %s AND content_hash = ANY(%s) AND status = ANY(%s)",
        (domain, wanted, list(DONE_STATUSES)),
    ).fetchall()
    return {row[0] for row in rows}


def _written_from_details(details: Mapping[str, Any]) -> int:
    """What a legacy caller stored, read from its details: 'rows_written' or 'written' when
    given, else the sum of its integer 'new_*' counts (the logbook's `new_messages`)."""
    for name in ("rows_written", "written"):
        value = details.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return max(value, 0)
    return sum(
        max(value, 0)
        for name, value in details.items()
        if name.startswith("new_") and isinstance(value, int) and not isinstance(value, bool)
    )


def record_ingested(
    conn: psycopg.Connection,
    domain: str,
    sha256: str,
    source_name: str,
    size_bytes: int | None,
    details: Mapping[str, Any],
    run_id: str | None = None,
    status: str = "done",
) -> None:
    """Record an inbox file (source 'inbox', identifier = file name, sub-identifier = hash), in
    the caller's transaction with the data it covers; see `record_item` for the general form."""
    if status not in ("done", "partial", "failed"):
        raise ValueError(f"catalog status {status!r} of {source_name} is not done/partial/failed")
    record_item(
        conn,
        CatalogItem(
            repository=domain,
            source=LEGACY_SOURCE,
            identifier=source_name,
            sub_identifier=sha256,
            location=source_name,
            content_hash=sha256,
            size_bytes=size_bytes,
            status=status,  # type: ignore[arg-type]
            rows_written=_written_from_details(details),
            details=details,
            run_id=run_id,
        ),
    )
