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
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

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

from platform_assets.pois import load, pipeline
from platform_assets.pois.sources import sources
from platform_assets.pois.sources.base import ExtractOptions, Source
from platform_assets.table_metadata import row_count, table_metadata
from resources.geocoder import GeocoderResource
from resources.poi_sources import PoiSourcesResource
from resources.settings import setting_number
from resources.warehouse import WarehouseResource, fetch_one

GROUP = "pois"
TABLES = ("poi", "address", "activity", "address_poi", "registered_poi", "poi_history")
FAILURE_SHARE_CHECK = "transform_failure_share_below_limit"

RAW_COLUMNS = [
    ("source", "text", "source name"),
    ("extraction_date", "date", "partition key (monthly table partitions)"),
    ("position", "integer", "order of the record in the extract"),
    ("original_id", "text", "the source's id of the record, when it has one"),
    ("record", "jsonb", "the record as received"),
    ("extracted_at", "timestamptz", "when it was stored"),
    ("run_id", "text", "Dagster run that extracted it"),
]
NORMALISED_COLUMNS = [
    ("source", "text", "source name"),
    ("original_id", "text", "the source's id"),
    ("extraction_date", "date", "extraction the record comes from"),
    ("content_hash", "text", "sha256 of the normalised record"),
    ("record", "jsonb", "RegisteredPoi as JSON (poi, addresses, activities)"),
]
TABLE_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "poi": [
        ("id", "bigint", "POI id (sequence)"),
        ("kind", "text", "event or facility"),
        ("name", "text", "normalised display name"),
        ("description", "text", "cleaned description"),
        ("url", "text", "web page"),
        ("active", "boolean", "false once gone from its source (never deleted)"),
        ("created_at", "timestamptz", "first load"),
        ("updated_at", "timestamptz", "last change"),
    ],
    "address": [
        ("id", "bigint", "address id (sequence)"),
        ("latitude", "double precision", "WGS 84"),
        ("longitude", "double precision", "WGS 84"),
        ("street", "text", "street, when known"),
        ("postcode", "text", "5-digit postcode"),
        ("city", "text", "commune name"),
        ("insee_code", "text", "INSEE commune code (2A/2B in Corsica)"),
        ("label", "text", "one-line address"),
    ],
    "activity": [
        ("id", "bigint", "activity id (sequence)"),
        ("poi_id", "bigint", "the POI"),
        ("position", "smallint", "order within the POI"),
        ("sport", "text", "controlled vocabulary (running, trail_running, swimming...)"),
        ("name", "text", "race or activity name"),
        ("distance_km", "double precision", "race distance"),
        ("starts_on", "date", "race date"),
    ],
    "address_poi": [
        ("poi_id", "bigint", "the POI"),
        ("address_id", "bigint", "the address"),
        ("role", "text", "venue, start, finish..."),
    ],
    "registered_poi": [
        ("source", "text", "source name (key)"),
        ("original_id", "text", "the source's id (key)"),
        ("poi_id", "bigint", "the POI"),
        ("content_hash", "text", "sha256 of the normalised record"),
        ("raw_hash", "text", "fingerprint of raw record + transform code"),
        ("active", "boolean", "still in its source"),
        ("first_seen_at", "timestamptz", "first load"),
        ("valid_from", "timestamptz", "start of the current version"),
        ("deactivated_at", "timestamptz", "when it left its source"),
    ],
    "poi_history": [
        ("id", "bigint", "history row id"),
        ("poi_id", "bigint", "the POI"),
        ("source", "text", "source name"),
        ("original_id", "text", "the source's id"),
        ("content_hash", "text", "hash of the replaced version"),
        ("record", "jsonb", "the replaced version (poi, addresses, activities)"),
        ("valid_from", "timestamptz", "when that version started"),
        ("valid_to", "timestamptz", "when it was replaced"),
    ],
}
TABLE_DESCRIPTIONS = {
    "poi": "Points of interest (events and facilities) of every source; inactive when gone.",
    "address": "Geocoded addresses of the POIs.",
    "activity": "What can be done at each POI (races, sports).",
    "address_poi": "Which address each POI is at, and in which role.",
    "registered_poi": "Each POI as its source sees it: (source, original id), content hash.",
    "poi_history": "Replaced versions of the POIs, with their validity dates.",
}


def raw_key(source: str) -> AssetKey:
    """Asset key of a source's raw extract."""
    return AssetKey(["pois", f"{source}_raw"])


def normalised_key(source: str) -> AssetKey:
    """Asset key of a source's normalised models."""
    return AssetKey(["pois", f"{source}_normalised"])


def table_key(table: str) -> AssetKey:
    """Asset key of a POI table."""
    return AssetKey(["pois", table])


class PoiExtractConfig(Config):
    """Which extraction date a raw extract is stored under."""

    extraction_date: str | None = Field(
        default=None, description="ISO date of the extraction; empty means today (UTC)"
    )


class PoiTransformConfig(Config):
    """How the normalised models are computed."""

    force: bool = Field(
        default=False,
        description="transform every record, not only those whose raw fingerprint changed",
    )
    workers: int = Field(
        default=1, ge=1, description="transform processes (a pool when > 1; measured slower here)"
    )


def max_failure_share() -> float:
    """POI_MAX_FAILURE_SHARE (default 0.1)."""
    value = setting_number("POI_MAX_FAILURE_SHARE")
    return 0.1 if value is None else value


def _raw_asset(source: Source) -> AssetsDefinition:
    @asset(
        key=raw_key(source.name),
        group_name=GROUP,
        kinds={source.kind, "postgres"},
        description=f"{source.description} Records as received, JSON, by extraction date.",
        metadata=table_metadata("pois.raw_extract", RAW_COLUMNS, source=source.name),
    )
    def _raw(
        context: AssetExecutionContext,
        config: PoiExtractConfig,
        warehouse: WarehouseResource,
        poi_sources: PoiSourcesResource,
    ) -> MaterializeResult:
        day = (
            date.fromisoformat(config.extraction_date)
            if config.extraction_date
            else datetime.now(UTC).date()
        )
        location = poi_sources.location(source.name)
        options = ExtractOptions(
            page_size=poi_sources.page_size,
            max_retries=poi_sources.max_retries,
            backoff_seconds=poi_sources.backoff_seconds,
            timeout_seconds=poi_sources.timeout_seconds,
        )
        context.log.info(f"{source.name}: extracting from {location or 'the bundled fixture'}")
        with warehouse.connect(autocommit=True) as conn:
            count = pipeline.store_extract(conn, source, location, options, day, context.run_id)
        context.log.info(f"{source.name}: {count} records stored for {day}")
        return MaterializeResult(
            metadata=row_count(
                count,
                extraction_date=str(day),
                location=location or "bundled fixture",
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
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
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
                stored = load.store_normalised(conn, source.name, date.min, [])
            else:
                stored = load.store_normalised(
                    conn, source.name, run.extraction_date, run.outcome.records
                )
                pipeline.quarantine_rejected(conn, source.name, run)
        outcome = run.outcome
        for rejected in outcome.rejected[:5]:
            context.log.warning(
                f"{source.name} record {rejected.original_id}: {rejected.stage}: {rejected.error}"
            )
        context.log.info(
            f"{source.name}: {run.pending} records to transform (raw fingerprint changed), "
            f"{stored} normalised, {len(outcome.rejected)} quarantined"
        )
        limit = max_failure_share()
        yield MaterializeResult(
            metadata=row_count(
                stored,
                extraction_date=str(run.extraction_date),
                transformed=run.pending,
                quarantined=len(outcome.rejected),
                failure_share=round(run.failure_share, 4),
                geocoder=geocoder.kind(),
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
                "failed": len(outcome.rejected),
                "transformed": run.pending,
                "extracted": run.extracted,
                "failure_share": round(run.failure_share, 4),
                "limit": limit,
                "errors": MetadataValue.json(
                    [
                        {"id": r.original_id, "stage": r.stage, "error": r.error[:200]}
                        for r in outcome.rejected[:10]
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
    def _tables(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
        """The generic load of every source's normalised records (one transaction per batch),
        then deactivation of what each source's latest extraction no longer holds."""
        totals = load.LoadResult()
        per_source: dict[str, dict[str, Any]] = {}
        with warehouse.connect(autocommit=True) as conn:
            for name in source_names:
                records = load.read_normalised(conn, name)
                day = pipeline.latest_extraction_date(conn, name)
                result = pipeline.load_source(conn, name, records, day)
                totals.add(result)
                per_source[name] = {
                    **result.as_metadata(),
                    "deactivated_ids": result.deactivated_ids[:20],
                }
                context.log.info(
                    f"{name}: {result.inserted} inserted, {result.updated} updated "
                    f"({result.history} history versions), {result.unchanged} unchanged, "
                    f"{result.deactivated} deactivated, {result.reactivated} reactivated"
                )
        counts = _table_counts(warehouse)
        summary = totals.as_metadata()
        for table in TABLES:
            yield MaterializeResult(
                asset_key=table_key(table),
                metadata=row_count(
                    counts[table], **summary, by_source=MetadataValue.json(per_source)
                ),
            )

    return _tables


@op(description="Transform the quarantined POI records again and load those that now pass.")
def replay_poi_quarantine(
    context: OpExecutionContext, warehouse: WarehouseResource, geocoder: GeocoderResource
) -> None:
    """After a fix of a transform: move what now transforms from the quarantine to the tables."""
    registry = sources()
    with warehouse.connect(autocommit=True) as conn:
        replayed = pipeline.replay_quarantine(conn, registry, geocoder.factory())
    for name, (loaded, still) in replayed.items():
        context.log.info(f"{name}: {loaded} replayed and loaded, {still} still failing")
        context.log_event(
            AssetMaterialization(
                asset_key=table_key("registered_poi"),
                metadata={"source": name, "replayed": loaded, "still_quarantined": still},
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
