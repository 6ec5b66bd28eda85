"""Dagster layer of the POI domain: per source a raw extract and its normalised models, then the
POI tables loaded from every source.

Asset graph (one pair per registered source, generated from the registry):
`pois/<source>_raw` -> `pois/<source>_normalised` -> `pois/poi`, `address`, `activity`,
`address_poi`, `registered_poi`, `poi_history` (one multi-asset: one generic load).

Partitioning: the raw extracts are stored in `pois.raw_extract`, range-partitioned in
PostgreSQL by extraction date (one table partition per month; a run replaces its own
(source, date) slice). The Dagster assets are not partitioned: each run extracts "now", and a
Dagster date partition would make the project-wide "materialise everything" job (and the demo)
need a partition key. Parallelism: each source is its own asset, so the multiprocess executor
transforms sources in parallel; inside a source, `PoiTransformConfig.workers` > 1 uses a process
pool (off by default: it measured slower, see transform.py).

Operations (platform_assets/ops, issue #17): each extract is an item of the ingestion catalog
(repository "pois", source = the POI source, identifier = where it was read, collection date =
the extraction date, with the extract's content hash), recorded in the transaction that stores
it; an extract the catalog already holds unchanged is not stored again unless `force`. Each stage
records its run metrics per source (`ops.run_metrics`, jobs `pois_extract`, `pois_transform`,
`pois_load`), which `checks.usual_extract_volume` compares with their usual level. Under dry run
(tag `fishnet/dry_run=true`, the `dry_run` resource or FISHNET_DRY_RUN) each asset extracts and
runs its part of the chain in a transaction that is rolled back: exact counts and a sample of
what would have been written, nothing kept.

Heavy modules (psycopg, the loader, its SQLAlchemy ORM tables, shapely) are imported in the asset
bodies, so importing the definitions stays light (issue #20).
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    asset,
    multi_asset,
    op,
)
from pydantic import Field

from platform_assets.ops.incremental import IncrementalConfig, resolve_window, utc_now
from platform_assets.pois.columns import (
    NORMALISED_COLUMNS,
    RAW_COLUMNS,
    TABLE_COLUMNS,
    TABLE_DESCRIPTIONS,
    TABLES,
)
from platform_assets.pois.sources import sources
from platform_assets.pois.sources.base import ExtractOptions, Source
from platform_assets.table_metadata import row_count, table_metadata
from resources.geocoder import GeocoderResource
from resources.poi_sources import PoiSourcesResource
from resources.publisher import DryRunResource
from resources.settings import setting_number
from resources.warehouse import WarehouseResource, fetch_one

if TYPE_CHECKING:
    from platform_assets.ops.dry_run import DryRun
    from platform_assets.ops.metrics import RunMetrics
    from platform_assets.pois.pipeline import Extract

GROUP = "pois"
FAILURE_SHARE_CHECK = "transform_failure_share_below_limit"
CATALOG_REPOSITORY = "pois"
EXTRACT_JOB = "pois_extract"
TRANSFORM_JOB = "pois_transform"
LOAD_JOB = "pois_load"
"""Run-metrics job names of the three stages (one history per stage and source, whichever Dagster
job ran them: the refresh job, the schedule, the UI's Materialize)."""
SAMPLE_ROWS = 5


def raw_key(source: str) -> AssetKey:
    """Asset key of a source's raw extract."""
    return AssetKey(["pois", f"{source}_raw"])


def normalised_key(source: str) -> AssetKey:
    """Asset key of a source's normalised models."""
    return AssetKey(["pois", f"{source}_normalised"])


def table_key(table: str) -> AssetKey:
    """Asset key of a POI table."""
    return AssetKey(["pois", table])


class PoiExtractConfig(IncrementalConfig):
    """Which extraction date a raw extract is stored under, and the incremental options.

    The POI sources are full snapshots, not time windows: `force` stores the extract even when
    the catalog holds the same content for that date (set the transform's `force` too for a full
    reload); `start` / `end` only label the run's window in its metrics (`ops.run_metrics`), so
    "since the last successful run" stays meaningful; rows already in the tables are never
    rewritten when unchanged (content hash), whatever `skip_existing` says.
    """

    extraction_date: str | None = Field(
        default=None, description="ISO date of the extraction; empty means today (UTC)"
    )


class PoiTransformConfig(Config):
    """How the normalised models are computed."""

    force: bool = Field(
        default=False,
        description="transform every record, not only those whose raw fingerprint changed "
        "(with the extract's `force`: a full reload)",
    )
    workers: int = Field(
        default=1, ge=1, description="transform processes (a pool when > 1; measured slower here)"
    )


def max_failure_share() -> float:
    """POI_MAX_FAILURE_SHARE (default 0.1)."""
    value = setting_number("POI_MAX_FAILURE_SHARE")
    return 0.1 if value is None else value


def _options(poi_sources: PoiSourcesResource) -> ExtractOptions:
    return ExtractOptions(
        page_size=poi_sources.page_size,
        max_retries=poi_sources.max_retries,
        backoff_seconds=poi_sources.backoff_seconds,
        timeout_seconds=poi_sources.timeout_seconds,
    )


def _location(poi_sources: PoiSourcesResource, source: Source) -> str:
    return poi_sources.location(source.name) or "bundled fixture"


def _extract(context: Any, source: Source, poi_sources: PoiSourcesResource) -> "Extract":
    from platform_assets.pois import pipeline

    location = poi_sources.location(source.name)
    context.log.info(f"{source.name}: extracting from {location or 'the bundled fixture'}")
    return pipeline.read_extract(source, location, _options(poi_sources))


def _record_metrics(
    warehouse: WarehouseResource, metrics: "RunMetrics", dry: "DryRun", status: str = "success"
) -> None:
    from platform_assets.ops.metrics import record_run_metrics

    metrics.finish(status)  # type: ignore[arg-type]
    with warehouse.connect() as conn:
        record_run_metrics(conn, metrics, dry_run=dry.enabled)


def _raw_asset(source: Source) -> AssetsDefinition:
    @asset(
        key=raw_key(source.name),
        group_name=GROUP,
        kinds={source.kind, "postgres"},
        description=f"{source.description} Records as received, JSON, by extraction date; each "
        "extract is an item of the ingestion catalog (ops.catalog).",
        metadata=table_metadata("pois.raw_extract", RAW_COLUMNS, source=source.name),
    )
    def _raw(
        context: AssetExecutionContext,
        config: PoiExtractConfig,
        warehouse: WarehouseResource,
        poi_sources: PoiSourcesResource,
        dry_run: DryRunResource,
    ) -> MaterializeResult:
        from platform_assets.ops.catalog import CatalogItem, pending, record_item
        from platform_assets.ops.dry_run import DryRun
        from platform_assets.ops.metrics import RunMetrics, last_success_end
        from platform_assets.pois import staging

        dry = DryRun.from_context(context, dry_run)
        day = (
            date.fromisoformat(config.extraction_date)
            if config.extraction_date
            else datetime.now(UTC).date()
        )
        with warehouse.connect() as conn:
            last_end = last_success_end(conn, EXTRACT_JOB, source.name)
        window = resolve_window(config, now=utc_now(), last_success_end=last_end)
        metrics = RunMetrics.start(EXTRACT_JOB, source.name, context.run_id, window=window)
        metrics.details.update({"dagster_job": context.job_name, "extraction_date": str(day)})
        try:
            extract = _extract(context, source, poi_sources)
            location = _location(poi_sources, source)
            item = CatalogItem(
                repository=CATALOG_REPOSITORY,
                source=source.name,
                identifier=location,
                collection_date=day,
                location=location,
                content_hash=extract.content_hash,
                size_bytes=extract.size_bytes,
            )
            count = len(extract.records)
            with warehouse.connect() as conn:
                todo = pending(conn, [item], force=config.force)  # opens the transaction
                if todo:
                    staging.store_raw_extract(
                        conn, source.name, day, extract.records, context.run_id
                    )
                # an unchanged extract stored nothing: its record only moves `last_seen_at`
                stored = count if todo else 0
                record_item(
                    conn, item.stored(stored, run_id=context.run_id, details={"records": count})
                )
                dry.finish(conn)  # commit the extract with its catalog item, or roll back
        except Exception:
            _record_metrics(warehouse, metrics, dry, "failure")
            raise
        metrics.items_read, metrics.items_written = 1, 1 if todo else 0
        metrics.rows_read, metrics.rows_written = count, stored
        _record_metrics(warehouse, metrics, dry)
        if todo:
            context.log.info(f"{source.name}: {count} records stored for {day}")
        else:
            context.log.info(
                f"{source.name}: the catalog already holds this extract for {day}, unchanged "
                "(content hash): not stored again (run config `force: true` to store it anyway)"
            )
        return MaterializeResult(
            metadata=row_count(
                count,
                extraction_date=str(day),
                location=location,
                content_hash=extract.content_hash,
                unchanged_extract_skipped=not todo,
                **metrics.as_metadata(prefix="run/"),
                **{
                    **dry.would_write("pois.raw_extract", stored, extract.sample(SAMPLE_ROWS)),
                    **dry.would_write("ops.catalog", 1 if todo else 0),
                },
            )
        )

    return _raw


def _normalised_asset(source: Source) -> AssetsDefinition:
    @asset(
        key=normalised_key(source.name),
        deps=[raw_key(source.name)],
        group_name=GROUP,
        kinds={"pydantic", "postgres"},
        description=f"{source.name}: records transformed into the common models (specific "
        "transform, then every transform_* step); failures quarantined with their error.",
        metadata=table_metadata("pois.normalised_record", NORMALISED_COLUMNS, source=source.name),
        check_specs=[
            AssetCheckSpec(
                FAILURE_SHARE_CHECK,
                asset=normalised_key(source.name),
                description="share of the records failing a transform below POI_MAX_FAILURE_SHARE",
            )
        ],
    )
    def _normalised(
        context: AssetExecutionContext,
        config: PoiTransformConfig,
        warehouse: WarehouseResource,
        geocoder: GeocoderResource,
        poi_sources: PoiSourcesResource,
        dry_run: DryRunResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        from platform_assets.ops.dry_run import DryRun
        from platform_assets.ops.metrics import RunMetrics
        from platform_assets.pois import pipeline, staging

        dry = DryRun.from_context(context, dry_run)
        metrics = RunMetrics.start(TRANSFORM_JOB, source.name, context.run_id)
        metrics.details.update({"dagster_job": context.job_name, "geocoder": geocoder.kind()})
        sample: list[dict[str, Any]] = []
        try:
            if dry:
                # the extract asset kept nothing: extract again, run the chain up to here in a
                # transaction, and roll it back
                outcome = _dry_run_source(
                    context,
                    source,
                    warehouse,
                    geocoder,
                    poi_sources,
                    dry,
                    until="transform",
                    force=config.force,
                )
                assert outcome.transform is not None
                stored = len(outcome.transform.outcome.records)
                run = outcome.transform
                sample = outcome.sample
            else:
                with warehouse.connect(autocommit=True) as conn:
                    run = pipeline.transform_extraction(
                        conn,
                        source,
                        geocoder.factory(),
                        geocoder.kind(),
                        force=config.force,
                        workers=config.workers,
                    )
                    if run.extraction_date is None:
                        context.log.warning(f"{source.name}: no extraction yet")
                        stored = staging.store_normalised(conn, source.name, date.min, [])
                    else:
                        stored = staging.store_normalised(
                            conn, source.name, run.extraction_date, run.outcome.records
                        )
                        pipeline.quarantine_rejected(conn, source.name, run)
        except Exception:
            _record_metrics(warehouse, metrics, dry, "failure")
            raise
        outcome_ = run.outcome
        metrics.items_read = 1 if run.extraction_date else 0
        metrics.rows_read, metrics.rows_written = run.pending, stored
        metrics.rows_rejected = len(outcome_.rejected)
        metrics.details.update({"extracted": run.extracted})
        _record_metrics(warehouse, metrics, dry)
        for rejected in outcome_.rejected[:5]:
            context.log.warning(
                f"{source.name} record {rejected.original_id}: {rejected.stage}: {rejected.error}"
            )
        context.log.info(
            f"{source.name}: {run.pending} records to transform (raw fingerprint changed), "
            f"{stored} normalised, {len(outcome_.rejected)} quarantined"
        )
        limit = max_failure_share()
        yield MaterializeResult(
            metadata=row_count(
                stored,
                extraction_date=str(run.extraction_date),
                transformed=run.pending,
                quarantined=len(outcome_.rejected),
                failure_share=round(run.failure_share, 4),
                geocoder=geocoder.kind(),
                **metrics.as_metadata(prefix="run/"),
                **{
                    **dry.would_write("pois.normalised_record", stored, sample),
                    **dry.would_write("pois.quarantine", len(outcome_.rejected)),
                },
            )
        )
        yield AssetCheckResult(
            check_name=FAILURE_SHARE_CHECK,
            asset_key=normalised_key(source.name),
            passed=run.failure_share <= limit,
            severity=AssetCheckSeverity.WARN,
            description=f"records failing a transform: {run.failure_share:.1%} "
            f"(limit {limit:.1%}); they wait in pois.quarantine",
            metadata={
                "failed": len(outcome_.rejected),
                "transformed": run.pending,
                "extracted": run.extracted,
                "failure_share": round(run.failure_share, 4),
                "limit": limit,
                "errors": MetadataValue.json(
                    [
                        {"id": r.original_id, "stage": r.stage, "error": r.error[:200]}
                        for r in outcome_.rejected[:10]
                    ]
                ),
            },
        )

    return _normalised


def _table_counts(warehouse: WarehouseResource) -> dict[str, int]:
    with warehouse.connect() as conn:
        return {t: fetch_one(conn, f"SELECT count(*) FROM pois.{t}")[0] for t in TABLES}


def _tables_asset(source_names: list[str]) -> AssetsDefinition:
    @multi_asset(
        name="pois_tables",
        group_name=GROUP,
        specs=[
            AssetSpec(
                table_key(table),
                deps=[normalised_key(s) for s in source_names],
                description=TABLE_DESCRIPTIONS[table],
                kinds={"postgres", "sqlalchemy"},
                metadata=table_metadata(f"pois.{table}", TABLE_COLUMNS[table]),
            )
            for table in TABLES
        ],
    )
    def _tables(
        context: AssetExecutionContext,
        warehouse: WarehouseResource,
        geocoder: GeocoderResource,
        poi_sources: PoiSourcesResource,
        dry_run: DryRunResource,
    ) -> Iterator[Any]:
        """The generic load of every source's normalised records (one transaction per batch),
        then deactivation of what each source's latest extraction no longer holds."""
        from platform_assets.ops.dry_run import DryRun
        from platform_assets.ops.metrics import RunMetrics
        from platform_assets.pois import load

        dry = DryRun.from_context(context, dry_run)
        totals = load.LoadResult()
        per_source: dict[str, dict[str, Any]] = {}
        samples: list[dict[str, Any]] = []
        registry = sources()
        for name in source_names:
            metrics = RunMetrics.start(LOAD_JOB, name, context.run_id)
            metrics.details["dagster_job"] = context.job_name
            try:
                if dry:
                    outcome = _dry_run_source(
                        context, registry[name], warehouse, geocoder, poi_sources, dry, until="load"
                    )
                    result = outcome.load
                    samples += outcome.sample[: SAMPLE_ROWS - len(samples)]
                else:
                    result = _load_source(warehouse, name)
            except Exception:
                _record_metrics(warehouse, metrics, dry, "failure")
                raise
            metrics.items_read = 1
            metrics.rows_read = result.records
            metrics.rows_written = (
                result.inserted + result.updated + result.reactivated + result.deactivated
            )
            metrics.details.update(result.as_metadata())
            _record_metrics(warehouse, metrics, dry)
            totals.add(result)
            per_source[name] = {
                **result.as_metadata(),
                "deactivated_ids": result.deactivated_ids[:20],
            }
            context.log.info(
                f"{name}: {result.inserted} inserted, {result.updated} updated "
                f"({result.history} history versions), {result.unchanged} unchanged, "
                f"{result.deactivated} deactivated, {result.reactivated} reactivated"
                + (" - DRY RUN: nothing kept" if dry else "")
            )
        counts = _table_counts(warehouse)
        summary = totals.as_metadata()
        # under dry run, per table: the POIs whose rows would be written (history: versions)
        touched = totals.inserted + totals.updated + totals.reactivated + totals.deactivated
        would = {"poi": touched, "registered_poi": touched, "poi_history": totals.history}
        for table in TABLES:
            yield MaterializeResult(
                asset_key=table_key(table),
                metadata=row_count(
                    counts[table],
                    **summary,
                    by_source=MetadataValue.json(per_source),
                    **{
                        **dry.metadata(),
                        **(
                            dry.would_write(
                                f"pois.{table}",
                                would.get(table, totals.inserted + totals.updated),
                                samples if table == "poi" else (),
                            )
                            if dry
                            else {}
                        ),
                    },
                ),
            )

    return _tables


def _load_source(warehouse: WarehouseResource, name: str) -> Any:
    from platform_assets.pois import pipeline, staging

    with warehouse.connect(autocommit=True) as conn:
        records = staging.read_normalised(conn, name)
        day = pipeline.latest_extraction_date(conn, name)
        return pipeline.load_source(
            conn, name, records, day, connect=lambda: warehouse.connect(autocommit=True)
        )


def _dry_run_source(
    context: Any,
    source: Source,
    warehouse: WarehouseResource,
    geocoder: GeocoderResource,
    poi_sources: PoiSourcesResource,
    dry: "DryRun",
    *,
    until: str,
    force: bool = False,
) -> Any:
    """Under dry run the earlier assets kept nothing: extract again and run the chain up to
    `until` ("transform" or "load") in a transaction that is rolled back; its exact counts and a
    sample of the records (`pipeline.DryRunOutcome`)."""
    from platform_assets.pois import pipeline

    extract = _extract(context, source, poi_sources)
    with warehouse.connect() as conn:
        outcome = pipeline.dry_run_source(
            conn,
            source,
            extract,
            datetime.now(UTC).date(),
            geocoder.factory(),
            geocoder.kind(),
            until=until,
            force=force,
            sample_size=SAMPLE_ROWS,
        )
        dry.finish(conn)
    return outcome


@op(description="Transform the quarantined POI records again and load those that now pass.")
def replay_poi_quarantine(
    context: OpExecutionContext,
    warehouse: WarehouseResource,
    geocoder: GeocoderResource,
    dry_run: DryRunResource,
) -> None:
    """After a fix of a transform: move what now transforms from the quarantine to the tables."""
    from platform_assets.ops.dry_run import DryRun
    from platform_assets.pois import pipeline

    dry = DryRun.from_context(context, dry_run)
    registry = sources()
    with warehouse.connect() as conn:
        conn.execute("SELECT 1")  # one transaction: the replay's own blocks become savepoints
        replayed = pipeline.replay_quarantine(conn, registry, geocoder.factory())
        dry.finish(conn)  # commit, or roll back under dry run
    for name, (loaded, still) in replayed.items():
        context.log.info(
            f"{name}: {loaded} replayed and loaded, {still} still failing"
            + (" - DRY RUN: nothing kept" if dry else "")
        )
        context.log_event(
            AssetMaterialization(
                asset_key=table_key("registered_poi"),
                metadata={
                    "source": name,
                    "replayed": loaded,
                    "still_quarantined": still,
                    **dry.would_write("pois.registered_poi", loaded),
                },
            )
        )


def build_assets() -> list[AssetsDefinition]:
    """Every POI asset: a raw and a normalised asset per registered source, then the tables."""
    registry = sources()
    per_source = [
        factory(source)
        for source in registry.values()
        for factory in (_raw_asset, _normalised_asset)
    ]
    return [*per_source, _tables_asset(list(registry))]
