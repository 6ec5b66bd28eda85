"""The harvester: the `processing/input` asset, fed by the catalogue and by our own products.

Why an asset and not an op: `processing.input` is a table people look at, and each harvest is a
change to it. As an asset it sits in the lineage graph and every run shows as a materialization
with its counts (new, already known, rejected) in one history. The orchestrator and launcher, whose
effect is not one table, are op jobs (jobs.py).

Each harvested input is an item of the ingestion catalog (`ops.catalog`: repository "processing",
source = the harvest source key, identifier = catalogue id, collection date = publication date),
recorded in the transaction of its chunk; each harvest's figures per source go to
`ops.run_metrics` (job `processing_harvest_job`); under dry run (tag `fishnet/dry_run=true`, the
`dry_run` resource or FISHNET_DRY_RUN) every chunk is written and rolled back, the window does
not move, and the metadata says what would have been stored. The run config (`HarvestConfig`,
an `IncrementalConfig`) bounds the publication window, forces known items again, or overwrites
rows already stored (harvest_store.py says how).
"""

# No `from __future__ import annotations` here: Dagster reads these annotations (config and
# resource parameters) when the definitions are built. SQLAlchemy, psycopg and the catalogue
# client are imported by the harvest's body (harvest_store.py), not by the definitions.
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from platform_assets.ops.dry_run import DryRun
from platform_assets.ops.incremental import (
    IncrementalConfig,
    Window,
    resolve_window,
    utc_now,
)
from platform_assets.ops.metrics import RunMetrics, record_run_metrics
from platform_assets.processing import columns
from platform_assets.table_metadata import table_metadata
from resources.catalogue import CatalogueResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    from platform_assets.processing.harvest_store import HarvestCounts

INPUT_ASSET_KEY = AssetKey(["processing", "input"])
TASK_KEY = AssetKey(["processing", "processing_task"])
VM_KEY = AssetKey(["processing", "virtual_machine"])
DISPATCH_KEY = AssetKey(["processing", "nomad_job_dispatch"])
STATUS_KEY = AssetKey(["processing", "processing_status"])
PRODUCT_KEY = AssetKey(["processing", "product"])
HARVEST_SOURCES = ("catalogue", "product")
REJECTED_SAMPLE = 20
HARVEST_JOB = "processing_harvest_job"
"""The job name harvest metrics are kept under, whichever job materialised processing/input."""


class HarvestConfig(IncrementalConfig):
    """Which sources a harvest reads (the product sensor asks for `product` only), and the
    incremental options: `start` / `end` bound the publication window (a backfill: the stored
    window does not move), else the harvest goes on from where the last one stopped; `force`
    registers again items the catalog holds as done; `skip_existing: false` overwrites them."""

    sources: list[str] = Field(
        default_factory=lambda: list(HARVEST_SOURCES),
        description="catalogue (the OData catalogue) and/or product (our own products)",
    )
    chunk_size: int = Field(default=500, description="inputs per transaction")


def explicit_window(config: IncrementalConfig, last_end: datetime | None = None) -> Window | None:
    """The window the config asks for, or None for the default (go on from the stored window
    end): `start`, `end` or `since_last_success: false` make it explicit."""
    if not (config.start or config.end or not config.since_last_success):
        return None
    return resolve_window(config, now=utc_now(), last_success_end=last_end)


def _catalogue_metrics(metrics: RunMetrics, counts: "HarvestCounts", replayed: int) -> RunMetrics:
    """The catalogue source's run figures."""
    read = counts.catalogue_new + counts.catalogue_known + counts.catalogue_overwritten
    read += counts.catalogue_rejected
    written = counts.catalogue_new + counts.catalogue_overwritten
    metrics.items_read = metrics.rows_read = read
    metrics.items_written = metrics.rows_written = written
    metrics.items_rejected = metrics.rows_rejected = counts.catalogue_rejected
    metrics.details.update(
        replayed=replayed,
        overwritten=counts.catalogue_overwritten,
        explicit_window=counts.window_explicit,
        window_from=str(counts.window_from) if counts.window_from else None,
        window_to=str(counts.window_to) if counts.window_to else None,
    )
    if counts.window_to is not None and counts.window_to.tzinfo:
        # the publication window this harvest covered (the cursor is timestamptz); a first
        # harvest that read the catalogue from its beginning has an end only
        metrics.window = Window(counts.window_from or counts.window_to, counts.window_to)
    return metrics.finish()


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
    dry_run: DryRunResource,
) -> MaterializeResult:
    """Harvest new inputs; idempotent (known catalogue ids are counted, not inserted again)."""
    from sqlalchemy import func, select

    from platform_assets.processing.harvest import catalogue_source_key
    from platform_assets.processing.harvest_store import (
        PRODUCT_SOURCE,
        HarvestCounts,
        HarvestOptions,
        harvest_catalogue,
        harvest_products,
        replay_rejected,
        stored_window,
    )
    from platform_assets.processing.tables import input_table

    unknown = sorted(set(config.sources) - set(HARVEST_SOURCES))
    if unknown:
        raise ValueError(f"unknown harvest sources {unknown}; use {list(HARVEST_SOURCES)}")
    dry = DryRun.from_context(context, dry_run)
    if dry:
        context.log.info(f"DRY RUN ({dry.origin}): every chunk is rolled back, the window stays")
    run_id = context.run_id
    engine = warehouse.engine
    source_key = catalogue_source_key(catalogue.collection, catalogue.name_contains)
    window = explicit_window(config, stored_window(engine, source_key)[1])
    options = HarvestOptions(window, config.force, config.skip_existing)
    if window is not None:
        context.log.info(
            f"explicit window {window.start.isoformat()} -> {window.end.isoformat()}: "
            "the stored window does not move"
        )
    counts = HarvestCounts()
    metrics: list[RunMetrics] = []
    if "catalogue" in config.sources:
        catalogue_metrics = RunMetrics.start(HARVEST_JOB, source_key, run_id)
        replayed = replay_rejected(
            engine, source_key, catalogue.collection, run_id=run_id, dry=dry.enabled
        )
        if replayed.resolved or replayed.still_rejected:
            context.log.info(
                f"kept rejected items: {replayed.resolved} now parse (registered), "
                f"{replayed.still_rejected} still rejected (processing.rejected_catalogue_item)"
            )
        counts = harvest_catalogue(
            engine, catalogue, config.chunk_size, run_id=run_id, dry=dry.enabled, options=options
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
            f"catalogue ({catalogue.kind}): {counts.catalogue_new} new, "
            f"{counts.catalogue_overwritten} overwritten, {counts.catalogue_known} already known, "
            f"{counts.catalogue_rejected} rejected; window "
            f"{counts.window_from} -> {counts.window_to}"
        )
        metrics.append(_catalogue_metrics(catalogue_metrics, counts, replayed.resolved))
    if "product" in config.sources:
        product_metrics = RunMetrics.start(HARVEST_JOB, PRODUCT_SOURCE, run_id, window=window)
        harvest_products(engine, counts, run_id=run_id, dry=dry.enabled, options=options)
        context.log.info(f"products: {counts.product_new} new inputs")
        read = counts.product_new + counts.product_known + counts.product_overwritten
        product_metrics.items_read = product_metrics.rows_read = read
        written = counts.product_new + counts.product_overwritten
        product_metrics.items_written = product_metrics.rows_written = written
        metrics.append(product_metrics.finish())
    with warehouse.connect() as conn:
        for source_metrics in metrics:
            record_run_metrics(conn, source_metrics, dry_run=dry.enabled)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(input_table)).scalar_one()
    new = counts.catalogue_new + counts.product_new
    overwritten = counts.catalogue_overwritten + counts.product_overwritten
    figures: dict[str, Any] = {}
    for source_metrics in metrics:
        figures.update(source_metrics.as_metadata(prefix=f"run/{source_metrics.source}/"))
    return MaterializeResult(
        metadata={
            "new": new,
            "overwritten": overwritten,
            "already_known": counts.catalogue_known + counts.product_known,
            "rejected": counts.catalogue_rejected,
            "rejected_kept_for_replay": "processing.rejected_catalogue_item",
            "catalogue_new": counts.catalogue_new,
            "catalogue_already_known": counts.catalogue_known,
            "product_new": counts.product_new,
            "catalogue": catalogue.kind if "catalogue" in config.sources else "not read",
            "window_from": str(counts.window_from) if counts.window_from else "start",
            "window_to": str(counts.window_to) if counts.window_to else "start",
            "window_explicit": window is not None,
            "force": config.force,
            "skip_existing": config.skip_existing,
            "rejected_sample": MetadataValue.json(
                [
                    {"id": item.item_id, "reason": item.reason}
                    for item in counts.rejected[:REJECTED_SAMPLE]
                ]
            ),
            "dagster/row_count": total,
            **figures,
            **dry.would_write("processing.input", new + overwritten, counts.new_sample),
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
