"""The harvester's database side: store inputs, their catalog items and the harvest window.

Pure (no Dagster): the asset (assets.py) imports it inside its body, so loading the definitions
does not import SQLAlchemy or psycopg. Every write happens in `_transaction`, which rolls back
under dry run, so the counts stay exact and nothing stays.

The incremental options (platform_assets/ops/incremental.py) act here:

- the window: by default a source is read from its stored window end (`ops.harvest_cursor`, the
  end of what the last successful harvest committed, chunk by chunk) and the window moves on;
  an explicit window (`start` / `end`, or `since_last_success: false`) reads the products
  published in it and leaves the stored window where it is (a backfill never makes the regular
  harvest skip anything);
- `force`: items the ingestion catalog holds as done are registered again (a deleted input comes
  back); without it they are counted as already known and left alone;
- `skip_existing`: rows already in `processing.input` are left as they are; `false` overwrites
  their catalogue fields (name, path, dates, tile, product type) with what was read now.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from platform_assets.ops.catalog import CatalogItem, ItemKey, done_items, record_items
from platform_assets.ops.incremental import Window
from platform_assets.processing.harvest import (
    InputRow,
    ProductRow,
    catalogue_source_key,
    chunk_by_publication,
    input_from_catalogue,
    input_from_product,
)
from platform_assets.processing.tables import harvest_cursor, input_table, rejected_catalogue_item
from resources.catalogue import CatalogueResource
from resources.catalogue_client import CatalogueProduct, RejectedItem

CATALOG_REPOSITORY = "processing"
PRODUCT_SOURCE = "product"
"""The catalog and run-metrics source of our own products harvested as inputs."""
SAMPLE_SIZE = 5
"""Inputs kept as a sample of what a harvest stored (as many as a dry run shows)."""
# What `skip_existing: false` overwrites: what the catalogue says of an item, not our bookkeeping.
_REFRESHED = ("product_type", "name", "path", "measurement_date", "publication_date", "tile")


@dataclass(frozen=True)
class HarvestOptions:
    """The incremental options of one harvest (from the run config)."""

    window: Window | None = None
    """An explicit publication window; None: from the stored window end onwards."""
    force: bool = False
    skip_existing: bool = True


@dataclass
class HarvestCounts:
    """What one harvest did, per source."""

    catalogue_new: int = 0
    catalogue_known: int = 0
    catalogue_rejected: int = 0
    catalogue_overwritten: int = 0
    product_new: int = 0
    product_known: int = 0
    product_overwritten: int = 0
    window_from: datetime | None = None
    window_to: datetime | None = None
    window_explicit: bool = False
    rejected: list[RejectedItem] = field(default_factory=list, repr=False)
    new_sample: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Up to 5 inputs stored (or, under dry run, that would have been)."""

    def keep_sample(self, rows: Sequence[InputRow], written: set[str]) -> None:
        """Add written rows to the sample until it holds 5."""
        for row in rows:
            if len(self.new_sample) >= SAMPLE_SIZE:
                return
            if row.catalogue_id in written:
                self.new_sample.append(dataclasses.asdict(row))


@dataclass(frozen=True)
class Written:
    """The catalogue ids a chunk inserted and overwrote, and how many it skipped as done."""

    inserted: set[str] = field(default_factory=set)
    overwritten: set[str] = field(default_factory=set)
    skipped_done: int = 0

    @property
    def stored(self) -> set[str]:
        return self.inserted | self.overwritten


def _item_key(row: InputRow) -> ItemKey:
    """An input's key in the ingestion catalog (as `_insert_inputs` records it)."""
    return ItemKey(row.catalogue_id, "", _collection_date(row))


def _collection_date(row: InputRow) -> date | None:
    return row.publication_date.date() if row.publication_date else None


@contextmanager
def _transaction(engine: sa.Engine, dry: bool) -> Iterator[sa.Connection]:
    """Like `engine.begin()`, but rolled back under dry run (the writes run, nothing stays)."""
    with engine.connect() as conn:
        yield conn
        if dry:
            conn.rollback()
        else:
            conn.commit()


def _driver(conn: sa.Connection) -> psycopg.Connection:
    return cast(psycopg.Connection, conn.connection.driver_connection)


def _insert_inputs(
    conn: sa.Connection,
    rows: Sequence[InputRow],
    source_key: str,
    run_id: str | None = None,
    options: HarvestOptions | None = None,
) -> Written:
    """Insert inputs (overwrite known ones unless `skip_existing`), skipping items the catalog
    holds as done unless `force`; record every row in the ingestion catalog (same transaction)."""
    options = options or HarvestOptions()
    if not rows:
        return Written()
    driver = _driver(conn)
    todo = list(rows)
    skipped = 0
    if not options.force:
        done = done_items(driver, CATALOG_REPOSITORY, source_key, [_item_key(r) for r in rows])
        todo = [r for r in rows if _item_key(r) not in done]
        skipped = len(rows) - len(todo)
    inserted: set[str] = set()
    overwritten: set[str] = set()
    if todo:
        statement = pg_insert(input_table).values([dataclasses.asdict(row) for row in todo])
        if options.skip_existing:
            statement = statement.on_conflict_do_nothing(index_elements=["catalogue_id"])
        else:
            statement = statement.on_conflict_do_update(
                index_elements=["catalogue_id"],
                set_={name: statement.excluded[name] for name in _REFRESHED},
            )
        # xmax = 0 on a row this statement inserted; an updated row has it set
        returning = statement.returning(
            input_table.c.catalogue_id, sa.literal_column("xmax = 0").label("inserted")
        )
        for catalogue_id, was_inserted in conn.execute(returning):
            (inserted if was_inserted else overwritten).add(catalogue_id)
    stored = inserted | overwritten
    record_items(
        driver,
        (
            CatalogItem(
                repository=CATALOG_REPOSITORY,
                source=source_key,
                identifier=row.catalogue_id,
                collection_date=_collection_date(row),
                location=row.path or row.name,
                rows_written=1 if row.catalogue_id in stored else 0,
                details={"product_type": row.product_type, "tile": row.tile},
                run_id=run_id,
            )
            for row in rows
        ),
    )
    return Written(inserted, overwritten, skipped)


def _store_window(conn: sa.Connection, source: str, published_after: datetime | None) -> None:
    """Move a source's window end forward (never back), in the caller's transaction."""
    statement = pg_insert(harvest_cursor).values(source=source, published_after=published_after)
    statement = statement.on_conflict_do_update(
        index_elements=["source"],
        set_={
            "published_after": sa.func.greatest(
                harvest_cursor.c.published_after, statement.excluded.published_after
            ),
            "updated_at": sa.func.now(),
        },
    )
    conn.execute(statement)


def stored_window(engine: sa.Engine, source: str) -> tuple[bool, datetime | None]:
    """(whether the source was harvested before, its window end)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(harvest_cursor.c.published_after).where(harvest_cursor.c.source == source)
        ).first()
    return (row is not None, row[0] if row else None)


def _count_chunk(counts: HarvestCounts, rows: Sequence[InputRow], written: Written) -> None:
    counts.keep_sample(rows, written.stored)
    counts.catalogue_new += len(written.inserted)
    counts.catalogue_overwritten += len(written.overwritten)
    counts.catalogue_known += len(rows) - len(written.stored)


def harvest_catalogue(
    engine: sa.Engine,
    catalogue: CatalogueResource,
    chunk_size: int = 500,
    now: datetime | None = None,
    *,
    run_id: str | None = None,
    dry: bool = False,
    options: HarvestOptions | None = None,
) -> HarvestCounts:
    """Register the catalogue's new products: from the stored window end onwards, or those
    published in `options.window`.

    Each chunk's inputs, their catalog items and (without an explicit window) the window end
    they allow are committed together, so a harvest that dies half way resumes after what it
    stored, and nothing is skipped. Under `dry`, each chunk is rolled back instead.
    """
    options = options or HarvestOptions()
    source = catalogue_source_key(catalogue.collection, catalogue.name_contains)
    explicit = options.window
    known_source, window = stored_window(engine, source)
    if explicit is not None:
        # `PublicationDate gt`: one microsecond before the start keeps the start inclusive
        window = explicit.start - timedelta(microseconds=1)
    elif not known_source:
        window = catalogue.first_window(now or datetime.now(UTC))
    counts = HarvestCounts(
        window_from=explicit.start if explicit else window,
        window_to=explicit.start if explicit else window,
        window_explicit=explicit is not None,
    )
    pending_rejects: list[RejectedItem] = []

    def products(items: Iterator[CatalogueProduct | RejectedItem]) -> Iterator[CatalogueProduct]:
        for item in items:
            if isinstance(item, RejectedItem):
                counts.catalogue_rejected += 1
                counts.rejected.append(item)
                pending_rejects.append(item)
            elif explicit is None:
                yield item
            elif item.publication_date >= explicit.end:
                return  # products come in publication order: the rest is after the window
            elif item.publication_date >= explicit.start:  # the overlap may reach before it
                yield item

    with catalogue.open() as client:
        items = client.iter_products(catalogue.query(window))
        for chunk in chunk_by_publication(products(items), chunk_size):
            with _transaction(engine, dry) as conn:
                # kept before the window moves past them: nothing rejected is lost
                _keep_rejected(conn, source, pending_rejects)
                pending_rejects.clear()
                written = _insert_inputs(conn, chunk.rows, source, run_id, options)
                if chunk.advance_to is not None and explicit is None:
                    _store_window(conn, source, chunk.advance_to)
            _count_chunk(counts, chunk.rows, written)
            if (
                chunk.advance_to is not None
                and explicit is None
                and (counts.window_to is None or chunk.advance_to > counts.window_to)
            ):
                counts.window_to = chunk.advance_to
    if explicit is not None:
        counts.window_to = explicit.end
    with _transaction(engine, dry) as conn:
        _keep_rejected(conn, source, pending_rejects)
        if not known_source and explicit is None:  # pin the first window for the next harvest
            _store_window(conn, source, window)
    return counts


def _keep_rejected(conn: sa.Connection, source: str, items: list[RejectedItem]) -> None:
    """Store rejected items (raw + reason); one seen again counts an attempt."""
    if not items:
        return
    rows = []
    for item in items:
        raw = json.loads(json.dumps(item.raw, default=str))
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
        rows.append(
            {
                "source": source,
                "raw_sha256": digest,
                "item_id": item.item_id,
                "raw": raw,
                "reason": item.reason,
            }
        )
    statement = pg_insert(rejected_catalogue_item).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["source", "raw_sha256"],
        set_={
            "reason": statement.excluded.reason,
            "attempts": rejected_catalogue_item.c.attempts + 1,
            "last_attempt_at": sa.func.now(),
        },
    )
    conn.execute(statement)


@dataclass
class ReplayCounts:
    """What a replay of the kept rejected items did."""

    resolved: int = 0
    still_rejected: int = 0


def replay_rejected(
    engine: sa.Engine,
    source: str,
    default_collection: str | None,
    *,
    run_id: str | None = None,
    dry: bool = False,
) -> ReplayCounts:
    """Parse the kept rejected items of `source` again; those that now parse become inputs."""
    counts = ReplayCounts()
    table = rejected_catalogue_item
    with _transaction(engine, dry) as conn:
        open_items = conn.execute(
            sa.select(table.c.id, table.c.raw)
            .where(table.c.source == source, table.c.resolved_at.is_(None))
            .order_by(table.c.id)
            .with_for_update(skip_locked=True)
        ).all()
        for row_id, raw in open_items:
            try:
                product = CatalogueProduct.from_odata(raw, default_collection)
            except ValueError as exc:
                counts.still_rejected += 1
                conn.execute(
                    table.update()
                    .where(table.c.id == row_id)
                    .values(
                        reason=str(exc).splitlines()[0],
                        attempts=table.c.attempts + 1,
                        last_attempt_at=sa.func.now(),
                    )
                )
                continue
            _insert_inputs(conn, [input_from_catalogue(product)], source, run_id)
            input_id = conn.execute(
                sa.select(input_table.c.id).where(input_table.c.catalogue_id == product.id)
            ).scalar_one()
            conn.execute(
                table.update()
                .where(table.c.id == row_id)
                .values(resolved_at=sa.func.now(), input_id=input_id)
            )
            counts.resolved += 1
    return counts


PRODUCT_CANDIDATES = sa.text(
    """
    SELECT p.id, p.path, p.product_type, p.created_at,
           COALESCE(i.measurement_date, ui.measurement_date) AS measurement_date,
           COALESCE(i.tile, ui.tile) AS tile
    FROM processing.product p
    JOIN processing.processing_task t ON t.id = p.task_id
    LEFT JOIN processing.input i ON i.id = t.input_id
    LEFT JOIN processing.input ui ON ui.source_product_id = t.upstream_product_id
    WHERE EXISTS (
        SELECT 1 FROM processing.processing_routine r WHERE r.input_product_type = p.product_type
    )
      AND (:registered_too
           OR NOT EXISTS (SELECT 1 FROM processing.input x WHERE x.source_product_id = p.id))
      AND (CAST(:start AS timestamptz) IS NULL OR p.created_at >= CAST(:start AS timestamptz))
      AND (CAST(:end AS timestamptz) IS NULL OR p.created_at < CAST(:end AS timestamptz))
    ORDER BY p.id
    """
)


def harvest_products(
    engine: sa.Engine,
    counts: HarvestCounts | None = None,
    *,
    run_id: str | None = None,
    dry: bool = False,
    options: HarvestOptions | None = None,
) -> HarvestCounts:
    """Register products that some routine takes as input (`product:<id>`), in one transaction
    (rolled back under `dry`); with an explicit window, those created in it."""
    counts = counts or HarvestCounts()
    options = options or HarvestOptions()
    window = options.window
    params = {
        # with force, products already registered are candidates again (to be overwritten)
        "registered_too": options.force,
        "start": window.start if window else None,
        "end": window.end if window else None,
    }
    with _transaction(engine, dry) as conn:
        rows = [
            input_from_product(ProductRow(*r)) for r in conn.execute(PRODUCT_CANDIDATES, params)
        ]
        written = _insert_inputs(conn, rows, PRODUCT_SOURCE, run_id, options)
    counts.keep_sample(rows, written.stored)
    counts.product_new += len(written.inserted)
    counts.product_overwritten += len(written.overwritten)
    counts.product_known += len(rows) - len(written.stored)
    return counts
