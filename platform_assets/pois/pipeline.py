"""One source's run, as the assets (and the benchmark) chain it: extract -> transform -> load.

Plain functions over a psycopg connection (autocommit) and the source's `Source`; no Dagster.
The incremental part: each raw record gets a fingerprint computed in PostgreSQL (sha256 of the
transform code's fingerprint followed by the record's JSONB text, which PostgreSQL renders
canonically); only records whose fingerprint differs from the one stored with their POI (new,
changed, reactivated, or a new transform code) are transformed and loaded. So a second run where
1% changed reads the extract in SQL and transforms 1% of it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from platform_assets.ops.bulk import gc_paused
from platform_assets.pois import load, models, staging, transform
from platform_assets.pois.sources.base import ExtractOptions, Source
from platform_assets.pois.transform import Rejected, TransformOutcome, transform_source
from resources.geocoder_client import Geocoder


def transform_fingerprint(source: Source, geocoder_identity: str) -> str:
    """sha256 of the code that shapes a record (models, generic transform, the source module)
    and of the geocoder in use: when any changes, every record is transformed again."""
    digest = hashlib.sha256(geocoder_identity.encode())
    modules = [models, transform, sys.modules[source.transform.__module__]]
    for module in modules:
        digest.update(Path(inspect.getfile(module)).read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Extract:
    """A source's records as received: (original id, JSON text) in order, and their fingerprint."""

    records: list[tuple[str | None, str]]
    content_hash: str
    """sha256 of the records' JSON lines: the catalog's "unchanged extract" test."""
    size_bytes: int

    def sample(self, count: int) -> list[dict[str, Any]]:
        """The first records, parsed (for a dry run's report)."""
        return [json.loads(text) for _, text in self.records[:count]]


def read_extract(source: Source, location: str | None, options: ExtractOptions) -> Extract:
    """Extract a source (HTTP pages or a file) into memory, fingerprinted."""
    records = [
        (source.original_id(record), json.dumps(record, ensure_ascii=False))
        for record in source.extract(location, options)
    ]
    digest = hashlib.sha256()
    size = 0
    for _, text in records:
        data = text.encode()
        size += len(data) + 1
        digest.update(data)
        digest.update(b"\n")
    return Extract(records, digest.hexdigest(), size)


def store_extract(
    conn: psycopg.Connection,
    source: Source,
    location: str | None,
    options: ExtractOptions,
    extraction_date: date,
    run_id: str | None = None,
) -> int:
    """Extract a source and keep its records as received for that date (replacing the day's)."""
    extract = read_extract(source, location, options)
    return staging.store_raw_extract(conn, source.name, extraction_date, extract.records, run_id)


PENDING_SQL = """
SELECT x.position, x.body, x.raw_hash
FROM (
    SELECT original_id, position, body,
           encode(sha256(convert_to(%(fingerprint)s || body, 'UTF8')), 'hex') AS raw_hash
    FROM (
        SELECT original_id, position, record::text AS body
        FROM pois.raw_extract
        WHERE source = %(source)s AND extraction_date = %(day)s
        OFFSET 0
    ) rendered
    OFFSET 0
) x
LEFT JOIN pois.registered_poi r ON r.source = %(source)s AND r.original_id = x.original_id
WHERE %(force)s OR r.raw_hash IS NULL OR r.raw_hash <> x.raw_hash OR NOT r.active
"""
# No ORDER BY: sorting 100,000 wide JSONB rows spilled to disk; the positions sort in Python.
# OFFSET 0 keeps each subquery whole: inlined, PostgreSQL would render each record as text (and
# hash it) once per reference. The text is parsed here by pydantic's JSON parser (Rust), about
# 2.5 times faster than the json module psycopg would use for a jsonb column.


def pending_records(
    conn: psycopg.Connection, source: str, day: date, fingerprint: str, *, force: bool = False
) -> list[tuple[dict[str, Any], str]]:
    """(raw record, fingerprint) of the extraction's records that need a transform and a load."""
    from pydantic_core import from_json

    params = {"source": source, "day": day, "fingerprint": fingerprint, "force": force}
    with gc_paused():
        rows = conn.execute(PENDING_SQL, params).fetchall()
        rows.sort(key=lambda row: row[0])  # the extract's order: of duplicates, the last one wins
        return [(from_json(body), raw_hash) for _, body, raw_hash in rows]


@dataclass
class SourceRun:
    """What a source's transform step did."""

    extraction_date: date | None
    extracted: int = 0
    pending: int = 0
    outcome: TransformOutcome = field(default_factory=TransformOutcome)
    quarantined: int = 0

    @property
    def failure_share(self) -> float:
        """Records of the extraction failing a transform, over all its records (an unchanged
        record was not transformed again: it passed last time)."""
        return len(self.outcome.rejected) / self.extracted if self.extracted else 0.0


def latest_extraction_date(conn: psycopg.Connection, source: str) -> date | None:
    """The latest extraction date of a source (None before its first extract)."""
    row = conn.execute(
        "SELECT max(extraction_date) FROM pois.raw_extract WHERE source = %s", (source,)
    ).fetchone()
    return row[0] if row else None


def transform_extraction(
    conn: psycopg.Connection,
    source: Source,
    geocoder_factory: Callable[[], Geocoder],
    geocoder_identity: str,
    *,
    day: date | None = None,
    force: bool = False,
    workers: int = 1,
) -> SourceRun:
    """Transform the pending records of a source's extraction (default: the latest)."""
    day = day or latest_extraction_date(conn, source.name)
    run = SourceRun(extraction_date=day)
    if day is None:
        return run
    fingerprint = transform_fingerprint(source, geocoder_identity)
    pending = pending_records(conn, source.name, day, fingerprint, force=force)
    run.pending = len(pending)
    held = conn.execute(
        "SELECT count(*) FROM pois.raw_extract WHERE source = %s AND extraction_date = %s",
        (source.name, day),
    ).fetchone()
    run.extracted = held[0] if held else 0
    raw = [record for record, _ in pending]
    run.outcome = transform_source(
        raw, source.transform, source.original_id, geocoder_factory, workers=workers
    )
    raw_hash = {source.original_id(record): h for record, h in pending}
    for record in run.outcome.records:
        record.raw_hash = raw_hash.get(record.original_id)
    _reject_duplicates(run.outcome, raw)
    return run


def _reject_duplicates(outcome: TransformOutcome, raw: list[dict[str, Any]]) -> None:
    """One record per original id: a source repeating an id keeps its last version, the earlier
    ones are quarantined (a batch must not hold a key twice)."""
    last = {record.original_id: index for index, record in enumerate(outcome.records)}
    if len(last) == len(outcome.records):
        return
    kept = []
    for index, record in enumerate(outcome.records):
        if last[record.original_id] == index:
            kept.append(record)
        else:
            duplicate = record.model_dump(mode="json", exclude={"errors"})
            outcome.rejected.append(
                Rejected(
                    duplicate,
                    record.original_id,
                    "generic",
                    f"original id {record.original_id!r} appears more than once in the "
                    "extraction; the last one was kept",
                )
            )
    outcome.records = kept


def quarantine_rejected(conn: psycopg.Connection, source: str, run: SourceRun) -> int:
    """Keep the run's rejected records; release the quarantined ones that now transform."""
    assert run.extraction_date is not None
    staging.release_quarantined(conn, source, [r.original_id for r in run.outcome.records])
    rejected: Iterable[tuple[Any, str | None, str, str]] = (
        (r.record, r.original_id, r.stage, r.error) for r in run.outcome.rejected
    )
    run.quarantined = staging.quarantine(conn, source, run.extraction_date, rejected)
    return run.quarantined


def load_source(
    conn: psycopg.Connection,
    source: str,
    records: list[models.RegisteredPoi],
    extraction_date: date | None,
    *,
    batch_size: int = 10_000,
    connect: load.Connect | None = None,
) -> load.LoadResult:
    """Load transformed records, then deactivate what the extraction no longer holds.

    `connect` opens more connections to load batches side by side (`load.load_records`).
    """
    result = load.load_records(conn, source, records, batch_size=batch_size, connect=connect)
    if extraction_date is not None:
        result.deactivated_ids = load.deactivate_missing_from_extract(conn, source, extraction_date)
        result.deactivated = len(result.deactivated_ids)
    return result


def replay_quarantine(
    conn: psycopg.Connection,
    registry: dict[str, Source],
    geocoder_factory: Callable[[], Geocoder],
) -> dict[str, tuple[int, int]]:
    """Transform quarantined records again; load and release those that pass (no deactivation).

    Returns, per source, (records loaded, records still failing).
    """
    from platform_assets.pois.transform import transform_chunk

    outcome: dict[str, tuple[int, int]] = {}
    for name, source in registry.items():
        rows = staging.quarantined(conn, name)
        if not rows:
            continue
        result = transform_chunk(
            [row[4] for row in rows], source.transform, source.original_id, geocoder_factory()
        )
        load.load_records(conn, name, result.records)
        with conn.transaction():
            passed = {r.original_id for r in result.records}
            ids = [row[0] for row in rows if row[2] in passed]
            conn.execute("DELETE FROM pois.quarantine WHERE id = ANY(%s)", (ids,))
            conn.execute(
                "UPDATE pois.quarantine SET attempts = attempts + 1, last_attempt_at = now() "
                "WHERE source = %s AND NOT (id = ANY(%s))",
                (name, ids),
            )
        outcome[name] = (len(result.records), len(result.rejected))
    return outcome


# --- dry run: the whole chain in the caller's transaction, rolled back by the caller -----------


@dataclass
class DryRunOutcome:
    """What a source's run would have written (counts exact: the writes happened, uncommitted)."""

    extracted: int = 0
    transform: SourceRun | None = None
    load: load.LoadResult | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)


def dry_run_source(
    conn: psycopg.Connection,
    source: Source,
    extract: Extract,
    day: date,
    geocoder_factory: Callable[[], Geocoder],
    geocoder_identity: str,
    *,
    until: str = "load",
    force: bool = False,
    sample_size: int = 5,
) -> DryRunOutcome:
    """Store the extract, then transform (`until` "transform") and load (`until` "load"), all in
    the caller's open transaction, which the caller rolls back (ops.dry_run.DryRun.finish).

    Every `conn.transaction()` below becomes a savepoint of that transaction, so the counts are
    those of a real run (what an upsert would insert, update, deactivate) and nothing stays.
    """
    conn.execute("SELECT 1")  # opens the transaction the callee blocks nest in (savepoints)
    outcome = DryRunOutcome(extracted=len(extract.records))
    staging.store_raw_extract(conn, source.name, day, extract.records)
    if until == "extract":
        outcome.sample = extract.sample(sample_size)
        return outcome
    run = transform_extraction(
        conn, source, geocoder_factory, geocoder_identity, day=day, force=force
    )
    staging.store_normalised(conn, source.name, day, run.outcome.records)
    quarantine_rejected(conn, source.name, run)
    outcome.transform = run
    outcome.sample = [
        r.model_dump(mode="json", exclude={"errors"}) for r in run.outcome.records[:sample_size]
    ]
    if until == "load":
        outcome.load = load_source(conn, source.name, run.outcome.records, day)
    return outcome
