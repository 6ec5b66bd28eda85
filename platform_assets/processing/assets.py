"""The harvester: the `processing/input` asset, fed by the catalogue and by our own products.

Why an asset and not an op: `processing.input` is a table people look at, and each harvest is a
change to it. As an asset it sits in the lineage graph and every run shows as a materialization
with its counts (new, already known, rejected) in one history. The orchestrator and launcher, whose
effect is not one table, are op jobs (jobs.py).

Each harvested input is an item of the ingestion catalog (`ops.catalog`: repository "processing",
source = the harvest source key, identifier = catalogue id, collection date = publication date),
recorded in the transaction of its chunk; each harvest's figures per source go to
`ops.run_metrics` (job `processing_harvest_job`); under dry run (tag `fishnet/dry_run=true` or
FISHNET_DRY_RUN) every chunk is written and rolled back, the window does not move, and the
metadata says what would have been stored.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations (config and
# resource parameters) when the definitions are built.
import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from platform_assets.ops.catalog import CatalogItem, record_items
from platform_assets.ops.dry_run import SAMPLE_ROWS, DryRun
from platform_assets.ops.incremental import Window
from platform_assets.ops.metrics import RunMetrics, record_run_metrics
from platform_assets.processing import columns
from platform_assets.processing.harvest import (
    InputRow,
    ProductRow,
    catalogue_source_key,
    chunk_by_publication,
    input_from_catalogue,
    input_from_product,
)
from platform_assets.processing.tables import harvest_cursor, input_table, rejected_catalogue_item
from platform_assets.table_metadata import table_metadata
from resources.catalogue import CatalogueResource
from resources.catalogue_client import CatalogueProduct, RejectedItem
from resources.warehouse import WarehouseResource

INPUT_ASSET_KEY = AssetKey(["processing", "input"])
TASK_KEY = AssetKey(["processing", "processing_task"])
VM_KEY = AssetKey(["processing", "virtual_machine"])
DISPATCH_KEY = AssetKey(["processing", "nomad_job_dispatch"])
STATUS_KEY = AssetKey(["processing", "processing_status"])
PRODUCT_KEY = AssetKey(["processing", "product"])
HARVEST_SOURCES = ("catalogue", "product")
REJECTED_SAMPLE = 20
CATALOG_REPOSITORY = "processing"
HARVEST_JOB = "processing_harvest_job"
"""The job name harvest metrics are kept under, whichever job materialised processing/input."""
PRODUCT_SOURCE = "product"
"""The catalog and run-metrics source of our own products harvested as inputs."""


@dataclass
class HarvestCounts:
    """What one harvest did, per source."""

    catalogue_new: int = 0
    catalogue_known: int = 0
    catalogue_rejected: int = 0
    product_new: int = 0
    product_known: int = 0
    window_from: datetime | None = None
    window_to: datetime | None = None
    rejected: list[RejectedItem] = field(default_factory=list, repr=False)
    new_sample: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Up to 5 inputs stored (or, under dry run, that would have been)."""

    def keep_sample(self, rows: Sequence[InputRow], inserted: set[str]) -> None:
        """Add new rows to the sample until it holds 5."""
        for row in rows:
            if len(self.new_sample) >= SAMPLE_ROWS:
                return
            if row.catalogue_id in inserted:
                self.new_sample.append(dataclasses.asdict(row))


@contextmanager
def _transaction(engine: sa.Engine, dry: bool) -> Iterator[sa.Connection]:
    """Like `engine.begin()`, but rolled back under dry run (the writes run, nothing stays)."""
    with engine.connect() as conn:
        yield conn
        if dry:
            conn.rollback()
        else:
            conn.commit()


def _insert_inputs(
    conn: sa.Connection,
    rows: tuple[InputRow, ...] | list[InputRow],
    source_key: str,
    run_id: str | None = None,
) -> set[str]:
    """Insert inputs, skipping known catalogue ids, and record every row in the ingestion
    catalog (in the same transaction); the catalogue ids actually inserted."""
    if not rows:
        return set()
    statement = (
        pg_insert(input_table)
        .values([dataclasses.asdict(row) for row in rows])
        .on_conflict_do_nothing(index_elements=["catalogue_id"])
        .returning(input_table.c.catalogue_id)
    )
    inserted = set(conn.execute(statement).scalars())
    driver = cast(psycopg.Connection, conn.connection.driver_connection)
    record_items(
        driver,
        (
            CatalogItem(
                repository=CATALOG_REPOSITORY,
                source=source_key,
                identifier=row.catalogue_id,
                collection_date=row.publication_date.date() if row.publication_date else None,
                location=row.path or row.name,
                rows_written=1 if row.catalogue_id in inserted else 0,
                details={"product_type": row.product_type, "tile": row.tile},
                run_id=run_id,
            )
            for row in rows
        ),
    )
    return inserted


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


def harvest_catalogue(
    engine: sa.Engine,
    catalogue: CatalogueResource,
    chunk_size: int = 500,
    now: datetime | None = None,
    *,
    run_id: str | None = None,
    dry: bool = False,
) -> HarvestCounts:
    """Register the catalogue's new products from the stored window end onwards.

    Each chunk's inputs, their catalog items and the window end they allow are committed
    together, so a harvest that dies half way resumes after what it stored, and nothing is
    skipped. Under `dry`, each chunk is rolled back instead (the counts stay exact).
    """
    source = catalogue_source_key(catalogue.collection, catalogue.name_contains)
    known_source, window = stored_window(engine, source)
    if not known_source:
        window = catalogue.first_window(now or datetime.now(UTC))
    counts = HarvestCounts(window_from=window, window_to=window)

    pending_rejects: list[RejectedItem] = []

    def products(items: Iterator[CatalogueProduct | RejectedItem]) -> Iterator[CatalogueProduct]:
        for item in items:
            if isinstance(item, RejectedItem):
                counts.catalogue_rejected += 1
                counts.rejected.append(item)
                pending_rejects.append(item)
            else:
                yield item

    with catalogue.open() as client:
        items = client.iter_products(catalogue.query(window))
        for chunk in chunk_by_publication(products(items), chunk_size):
            with _transaction(engine, dry) as conn:
                # kept before the window moves past them: nothing rejected is lost
                _keep_rejected(conn, source, pending_rejects)
                pending_rejects.clear()
                inserted = _insert_inputs(conn, chunk.rows, source, run_id)
                if chunk.advance_to is not None:
                    _store_window(conn, source, chunk.advance_to)
            counts.keep_sample(chunk.rows, inserted)
            counts.catalogue_new += len(inserted)
            counts.catalogue_known += len(chunk.rows) - len(inserted)
            if chunk.advance_to is not None and (
                counts.window_to is None or chunk.advance_to > counts.window_to
            ):
                counts.window_to = chunk.advance_to
    with _transaction(engine, dry) as conn:
        _keep_rejected(conn, source, pending_rejects)
        if not known_source:  # pin the first window so the next harvest starts there
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
      AND NOT EXISTS (SELECT 1 FROM processing.input x WHERE x.source_product_id = p.id)
    ORDER BY p.id
    """
)


def harvest_products(
    engine: sa.Engine,
    counts: HarvestCounts | None = None,
    *,
    run_id: str | None = None,
    dry: bool = False,
) -> HarvestCounts:
    """Register products that some routine takes as input (`product:<id>`), in one transaction
    (rolled back under `dry`)."""
    counts = counts or HarvestCounts()
    with _transaction(engine, dry) as conn:
        rows = [input_from_product(ProductRow(*r)) for r in conn.execute(PRODUCT_CANDIDATES)]
        inserted = _insert_inputs(conn, rows, PRODUCT_SOURCE, run_id)
    counts.keep_sample(rows, inserted)
    counts.product_new += len(inserted)
    counts.product_known += len(rows) - len(inserted)
    return counts


class HarvestConfig(Config):
    """Which sources a harvest reads; the product sensor asks for `product` only."""

    sources: list[str] = list(HARVEST_SOURCES)
    chunk_size: int = 500


@asset(
    key=INPUT_ASSET_KEY,
    group_name="processing",
    kinds={"postgres", "odata"},
    description="Products to process: catalogue products (harvested in a window that advances with "
    "the publication date) and products of our routines that the next routine takes as input.",
    metadata=table_metadata("processing.input", columns.INPUT),
)
def processing_input(
    context: AssetExecutionContext,
    config: HarvestConfig,
    warehouse: WarehouseResource,
    catalogue: CatalogueResource,
) -> MaterializeResult:
    """Harvest new inputs; idempotent (known catalogue ids are counted, not inserted again)."""
    unknown = sorted(set(config.sources) - set(HARVEST_SOURCES))
    if unknown:
        raise ValueError(f"unknown harvest sources {unknown}; use {list(HARVEST_SOURCES)}")
    dry = DryRun.from_context(context)
    if dry:
        context.log.info("DRY RUN: every chunk is rolled back, the window does not move")
    run_id = context.run_id
    counts = HarvestCounts()
    metrics: list[RunMetrics] = []
    if "catalogue" in config.sources:
        source_key = catalogue_source_key(catalogue.collection, catalogue.name_contains)
        catalogue_metrics = RunMetrics.start(HARVEST_JOB, source_key, run_id)
        replayed = replay_rejected(
            warehouse.engine, source_key, catalogue.collection, run_id=run_id, dry=dry.enabled
        )
        if replayed.resolved or replayed.still_rejected:
            context.log.info(
                f"kept rejected items: {replayed.resolved} now parse (registered), "
                f"{replayed.still_rejected} still rejected (processing.rejected_catalogue_item)"
            )
        counts = harvest_catalogue(
            warehouse.engine, catalogue, config.chunk_size, run_id=run_id, dry=dry.enabled
        )
        for item in counts.rejected[:REJECTED_SAMPLE]:
            context.log.warning(
                f"rejected catalogue item {item.item_id or '<no Id>'}: {item.reason}"
            )
        if counts.catalogue_rejected > REJECTED_SAMPLE:
            context.log.warning(
                f"... and {counts.catalogue_rejected - REJECTED_SAMPLE} more rejected"
            )
        context.log.info(
            f"catalogue ({catalogue.kind}): {counts.catalogue_new} new, {counts.catalogue_known} "
            f"already known, {counts.catalogue_rejected} rejected; window "
            f"{counts.window_from} -> {counts.window_to}"
        )
        read = counts.catalogue_new + counts.catalogue_known + counts.catalogue_rejected
        catalogue_metrics.items_read = catalogue_metrics.rows_read = read
        catalogue_metrics.items_written = catalogue_metrics.rows_written = counts.catalogue_new
        catalogue_metrics.items_rejected = counts.catalogue_rejected
        catalogue_metrics.rows_rejected = counts.catalogue_rejected
        catalogue_metrics.details.update(
            replayed=replayed.resolved,
            window_from=str(counts.window_from) if counts.window_from else None,
            window_to=str(counts.window_to) if counts.window_to else None,
        )
        if counts.window_from and counts.window_to and counts.window_from.tzinfo:
            # the publication window this harvest covered (the cursor is timestamptz)
            catalogue_metrics.window = Window(counts.window_from, counts.window_to)
        metrics.append(catalogue_metrics.finish())
    if "product" in config.sources:
        product_metrics = RunMetrics.start(HARVEST_JOB, PRODUCT_SOURCE, run_id)
        harvest_products(warehouse.engine, counts, run_id=run_id, dry=dry.enabled)
        context.log.info(f"products: {counts.product_new} new inputs")
        read = counts.product_new + counts.product_known
        product_metrics.items_read = product_metrics.rows_read = read
        product_metrics.items_written = product_metrics.rows_written = counts.product_new
        metrics.append(product_metrics.finish())
    with warehouse.connect() as conn:
        for source_metrics in metrics:
            record_run_metrics(conn, source_metrics, dry_run=dry.enabled)
    with warehouse.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(input_table)).scalar_one()
    new = counts.catalogue_new + counts.product_new
    figures: dict[str, Any] = {}
    for source_metrics in metrics:
        figures.update(source_metrics.as_metadata(prefix=f"run/{source_metrics.source}/"))
    return MaterializeResult(
        metadata={
            "new": new,
            "already_known": counts.catalogue_known + counts.product_known,
            "rejected": counts.catalogue_rejected,
            "rejected_kept_for_replay": "processing.rejected_catalogue_item",
            "catalogue_new": counts.catalogue_new,
            "catalogue_already_known": counts.catalogue_known,
            "product_new": counts.product_new,
            "catalogue": catalogue.kind if "catalogue" in config.sources else "not read",
            "window_from": str(counts.window_from) if counts.window_from else "start",
            "window_to": str(counts.window_to) if counts.window_to else "start",
            "rejected_sample": MetadataValue.json(
                [
                    {"id": item.item_id, "reason": item.reason}
                    for item in counts.rejected[:REJECTED_SAMPLE]
                ]
            ),
            "dagster/row_count": total,
            **figures,
            **dry.would_write("processing.input", new, counts.new_sample),
        }
    )


def _chain_table(
    key: AssetKey, deps: list[AssetKey], kinds: set[str], description: str, cols: list
) -> AssetSpec:
    return AssetSpec(
        key,
        deps=deps,
        group_name="processing",
        kinds=kinds,
        description=description,
        metadata=table_metadata(".".join(key.path), cols),
    )


# The tables the orchestrator, launcher and status tracker write from op jobs (their effect is not
# one table): declared so that the lineage shows the whole chain; the ops report materialisations
# of them. Products become inputs again (the product harvest): that edge would close a cycle, so
# it is said here rather than drawn.
CHAIN_TABLES = [
    _chain_table(
        TASK_KEY,
        [INPUT_ASSET_KEY],
        {"postgres", "ortools"},
        "Processing tasks planned by the orchestrator: one per (input, routine), placed on a VM "
        "with planned start and end (processing_orchestrator_job).",
        columns.TASK,
    ),
    _chain_table(
        VM_KEY,
        [TASK_KEY],
        {"postgres"},
        "Virtual machines the planner needs, as few as CPU, RAM, storage and VM limits allow.",
        columns.VIRTUAL_MACHINE,
    ),
    _chain_table(
        DISPATCH_KEY,
        [TASK_KEY, VM_KEY],
        {"postgres", "nomad"},
        "One Nomad (or local) job per task attempt, registered by processing_launcher_job.",
        columns.DISPATCH,
    ),
    _chain_table(
        STATUS_KEY,
        [DISPATCH_KEY],
        {"postgres", "nomad"},
        "Job states polled by processing_status_job (started, processed, errors).",
        columns.STATUS,
    ),
    _chain_table(
        PRODUCT_KEY,
        [STATUS_KEY],
        {"postgres"},
        "Products of processed tasks; the product harvest registers them as inputs of the next "
        "routine (processing/input).",
        columns.PRODUCT,
    ),
]

PROCESSING_ASSETS: list[AssetsDefinition | AssetSpec] = [processing_input, *CHAIN_TABLES]
