"""The harvester: the `processing/input` asset, fed by the catalogue and by our own products.

Why an asset and not an op: `processing.input` is a table people look at, and each harvest is a
change to it. As an asset it sits in the lineage graph and every run shows as a materialization
with its counts (new, already known, rejected) in one history. The orchestrator and launcher, whose
effect is not one table, are op jobs (jobs.py).
"""

# No `from __future__ import annotations` here: Dagster reads these annotations (config and
# resource parameters) when the definitions are built.
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from platform_assets.processing import columns
from platform_assets.processing.harvest import (
    InputRow,
    ProductRow,
    catalogue_source_key,
    chunk_by_publication,
    input_from_product,
)
from platform_assets.processing.tables import harvest_cursor, input_table
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


def _insert_inputs(conn: sa.Connection, rows: tuple[InputRow, ...] | list[InputRow]) -> int:
    """Insert inputs, skipping known catalogue ids; the number actually inserted."""
    if not rows:
        return 0
    statement = (
        pg_insert(input_table)
        .values([dataclasses.asdict(row) for row in rows])
        .on_conflict_do_nothing(index_elements=["catalogue_id"])
        .returning(input_table.c.id)
    )
    return len(conn.execute(statement).all())


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
) -> HarvestCounts:
    """Register the catalogue's new products from the stored window end onwards.

    Each chunk's inputs and the window end they allow are committed together, so a harvest that
    dies half way resumes after what it stored, and nothing is skipped.
    """
    source = catalogue_source_key(catalogue.collection, catalogue.name_contains)
    known_source, window = stored_window(engine, source)
    if not known_source:
        window = catalogue.first_window(now or datetime.now(UTC))
    counts = HarvestCounts(window_from=window, window_to=window)

    def products(items: Iterator[CatalogueProduct | RejectedItem]) -> Iterator[CatalogueProduct]:
        for item in items:
            if isinstance(item, RejectedItem):
                counts.catalogue_rejected += 1
                counts.rejected.append(item)
            else:
                yield item

    with catalogue.open() as client:
        items = client.iter_products(catalogue.query(window))
        for chunk in chunk_by_publication(products(items), chunk_size):
            with engine.begin() as conn:
                inserted = _insert_inputs(conn, chunk.rows)
                if chunk.advance_to is not None:
                    _store_window(conn, source, chunk.advance_to)
            counts.catalogue_new += inserted
            counts.catalogue_known += len(chunk.rows) - inserted
            if chunk.advance_to is not None and (
                counts.window_to is None or chunk.advance_to > counts.window_to
            ):
                counts.window_to = chunk.advance_to
    if not known_source:
        with engine.begin() as conn:  # pin the first window so the next harvest starts there
            _store_window(conn, source, window)
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


def harvest_products(engine: sa.Engine, counts: HarvestCounts | None = None) -> HarvestCounts:
    """Register products that some routine takes as input (`product:<id>`), in one transaction."""
    counts = counts or HarvestCounts()
    with engine.begin() as conn:
        rows = [input_from_product(ProductRow(*r)) for r in conn.execute(PRODUCT_CANDIDATES)]
        inserted = _insert_inputs(conn, rows)
    counts.product_new += inserted
    counts.product_known += len(rows) - inserted
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
    counts = HarvestCounts()
    if "catalogue" in config.sources:
        counts = harvest_catalogue(warehouse.engine, catalogue, config.chunk_size)
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
    if "product" in config.sources:
        harvest_products(warehouse.engine, counts)
        context.log.info(f"products: {counts.product_new} new inputs")
    with warehouse.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(input_table)).scalar_one()
    return MaterializeResult(
        metadata={
            "new": counts.catalogue_new + counts.product_new,
            "already_known": counts.catalogue_known + counts.product_known,
            "rejected": counts.catalogue_rejected,
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

PROCESSING_ASSETS = [processing_input, *CHAIN_TABLES]
