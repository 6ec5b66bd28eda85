"""Dagster layer of the positions domain: ingest NAF inbox files, re-enrich days, refresh the
last positions, replay the quarantine, keep the partitions. The SQL lives in ``store``."""

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    BackfillPolicy,
    Config,
    In,
    MaterializeResult,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    asset,
    op,
)
from pydantic import Field

from platform_assets.ops.catalog import ingested_hashes, record_ingested
from platform_assets.positions import store
from platform_assets.positions.inbox import (
    InboxFile,
    inbox_file_at,
    is_inbox_file,
    list_inbox,
    read_line_batches,
)
from platform_assets.positions.partitions import positions_daily_partitions
from platform_assets.table_metadata import row_count, table_metadata
from resources.inboxes import NafInboxResource
from resources.settings import setting_number
from resources.warehouse import WarehouseResource

DOMAIN = "positions"
GROUP = "positions"
KINDS = {"postgres", "pandas"}
POSITIONS = AssetKey(["positions", "positions"])
LAST_POSITIONS = AssetKey(["positions", "last_positions"])
ANCHORAGES = AssetKey(["reference", "anchorages"])
VESSELS = AssetKey(["reference", "vessels"])
PARTITIONS_AHEAD_DAYS = 7

POSITIONS_COLUMNS = [
    ("id", "bigint", "position id (sequence); orders positions sharing an instant"),
    ("track_id", "bigint", "the track: one exact (CFR, external marking, IRCS) triple"),
    ("internal_reference_number", "text", "CFR (NAF IR)"),
    ("external_reference_number", "text", "external marking (NAF XR)"),
    ("ircs", "text", "radio call sign (NAF RC)"),
    ("vessel_name", "text", "NAF NA, verbatim"),
    ("flag_state", "text", "ISO alpha-2 (NAF FS)"),
    ("from_country", "text", "transmitting party, ISO alpha-2 (NAF FR)"),
    ("destination_country", "text", "receiving party, ISO alpha-2 (NAF AD)"),
    ("trip_number", "text", "NAF TN"),
    ("latitude", "double precision", "decimal degrees north"),
    ("longitude", "double precision", "decimal degrees east"),
    ("speed", "double precision", "reported speed, knots"),
    ("course", "double precision", "reported course, degrees"),
    ("datetime_utc", "timestamptz", "instant of the position (partition key, daily)"),
    ("message_type", "text", "POS, MAN, ENT, EXI or null"),
    ("is_manual", "boolean", "manual position (TM MAN)"),
    ("network_type", "text", "SATELLITE, CELLULAR or null"),
    ("is_at_port", "boolean", "H3 cell (res. 9) is a reference.anchorages cell"),
    ("meters_from_previous_position", "double precision", "great-circle distance, metres"),
    ("time_since_previous_position", "double precision", "hours since the previous position"),
    ("average_speed", "double precision", "knots from the previous position"),
    ("is_fishing", "boolean", "fishing activity; null when undecidable"),
    ("time_emitting_at_sea", "double precision", "hours emitting continuously outside port"),
]
LAST_POSITIONS_COLUMNS = [
    ("track_id", "bigint", "the track (one row per track)"),
    ("id", "bigint", "the latest position's id"),
    ("vessel_id", "bigint", "reference.vessels match (CFR, then external marking, then IRCS)"),
    ("cfr", "text", "CFR"),
    ("external_immatriculation", "text", "external marking"),
    ("ircs", "text", "radio call sign"),
    ("vessel_name", "text", "vessel name"),
    ("flag_state", "text", "ISO alpha-2"),
    ("latitude", "double precision", "latest latitude"),
    ("longitude", "double precision", "latest longitude"),
    ("speed", "double precision", "reported speed, knots"),
    ("course", "double precision", "reported course, degrees"),
    ("last_position_datetime_utc", "timestamptz", "instant of the latest position"),
    ("is_manual", "boolean", "manual position"),
    ("emission_period_s", "double precision", "seconds between the two latest positions"),
    ("vessel_identifier", "text", "first identifier present: CFR, IRCS, external marking"),
    ("is_at_port", "boolean", "at port"),
    ("is_fishing", "boolean", "fishing at the latest position"),
    ("time_emitting_at_sea", "double precision", "hours at sea at the latest position"),
    ("estimated_current_latitude", "double precision", "projected (<= 2 h, geodesic)"),
    ("estimated_current_longitude", "double precision", "projected (<= 2 h, geodesic)"),
]


class NafIngestConfig(Config):
    """Which inbox files to ingest."""

    files: list[str] = Field(
        default_factory=list,
        description="inbox file names or paths; empty means every inbox file not yet ingested",
    )
    force: bool = Field(
        default=False, description="ingest again files the catalog already lists (idempotent)"
    )


def _anchorages(warehouse: WarehouseResource, log: Any) -> Any:
    with warehouse.adbc() as conn:
        frame = store.read_anchorages(conn)
    if frame.empty:
        log.warning(
            "reference.anchorages is empty: no position will be at port (materialise "
            "reference/anchorages first)"
        )
    return frame


def _select_files(
    config: NafIngestConfig, inbox: Path, warehouse: WarehouseResource
) -> tuple[list[InboxFile], int, list[str]]:
    """The requested files not yet in the catalog (all with ``force``), how many were skipped
    as already ingested, and requested names not found."""
    if config.files:
        paths = dict.fromkeys(inbox / name for name in config.files)
        found = [p for p in paths if is_inbox_file(p)]
        missing = [str(p) for p in paths if p not in found]
        requested = [inbox_file_at(p) for p in found]
    else:
        requested, missing = list_inbox(inbox), []
    if config.force:
        return requested, 0, missing
    with warehouse.connect() as conn:
        done = ingested_hashes(conn, DOMAIN, [f.sha256 for f in requested])
    return [f for f in requested if f.sha256 not in done], len(done), missing


def ingest_file(
    warehouse: WarehouseResource, inbox_file: InboxFile, anchorages: Any, run_id: str | None
) -> store.IngestResult:
    """Stream one file into the tables: one transaction per block of lines (a re-run after a
    failure adds nothing twice), then its catalog entry."""
    total = store.IngestResult()
    with warehouse.adbc() as conn:
        for batch in read_line_batches(inbox_file.path):
            result = store.ingest_batch(conn, inbox_file.path.name, batch, anchorages)
            conn.commit()
            total.add(result)
    with warehouse.connect() as conn:
        record_ingested(
            conn,
            DOMAIN,
            inbox_file.sha256,
            inbox_file.path.name,
            inbox_file.size,
            {
                "lines": total.lines,
                "positions": total.load.rows,
                "inserted": total.load.inserted,
                "duplicates": total.load.duplicates,
                "late_tracks": total.load.late_tracks,
                "quarantined": total.quarantined,
            },
            run_id=run_id,
            status="done" if not total.quarantined else "partial",
        )
        conn.commit()
    return total


@op(
    out=Out(Nothing),
    description="Ingest NAF inbox files: parse, quarantine bad lines, enrich and store the rest "
    "(idempotent), one materialisation of positions/positions per day touched.",
)
def ingest_naf_files(
    context: OpExecutionContext,
    config: NafIngestConfig,
    warehouse: WarehouseResource,
    naf_inbox: NafInboxResource,
) -> None:
    """Files already in the ingestion catalog are skipped unless ``force``."""
    inbox = naf_inbox.path()
    files, skipped, missing = _select_files(config, inbox, warehouse)
    for name in missing:
        context.log.warning(f"requested file {name} is not a NAF file of {inbox}")
    context.log.info(f"{len(files)} file(s) to ingest from {inbox} ({skipped} already ingested)")
    anchorages = _anchorages(warehouse, context.log)
    totals = store.IngestResult()
    started = time.perf_counter()
    for number, inbox_file in enumerate(files, start=1):
        result = ingest_file(warehouse, inbox_file, anchorages, context.run_id)
        totals.add(result)
        for error in result.errors[:3]:
            context.log.warning(error)
        rate = totals.load.rows / max(time.perf_counter() - started, 1e-9)
        context.log.info(
            f"[{number}/{len(files)}] {inbox_file.path.name}: {result.lines} lines, "
            f"{result.load.inserted} new positions, {result.load.duplicates} already stored, "
            f"{result.load.late_tracks} track(s) re-enriched for late records, "
            f"{result.quarantined} quarantined ({rate:,.0f} positions/s so far)"
        )
    for day in sorted(totals.load.days):
        context.log_event(
            AssetMaterialization(
                asset_key=POSITIONS,
                partition=day.isoformat(),
                metadata={"source": "inbox", "files": len(files)},
            )
        )
    context.log.info(
        f"done: {len(files)} file(s), {totals.lines} lines, {totals.load.inserted} new "
        f"positions, {totals.load.duplicates} already stored, {totals.quarantined} quarantined"
    )


def refresh_last_positions(
    warehouse: WarehouseResource, now: datetime | None = None
) -> dict[str, Any]:
    """Refresh positions.last_positions in one transaction; what to report."""
    instant = now or datetime.now(UTC)
    with warehouse.adbc() as conn:
        count = store.refresh_last_positions(conn, instant)
        conn.commit()
        frame = store.read_last_positions(conn)
        conn.commit()
    recent = frame.sort_values("last_position_datetime_utc", ascending=False).head(5)
    return row_count(
        count,
        now=instant.isoformat(),
        at_port=int(frame["is_at_port"].fillna(False).sum()),
        matched_to_register=int(frame["vessel_id"].notna().sum()),
        latest=MetadataValue.json(
            recent[["cfr", "ircs", "last_position_datetime_utc", "is_at_port"]]
            .astype(str)
            .to_dict(orient="records")
        ),
    )


class LastPositionsConfig(Config):
    """The instant last positions are computed at (replays and tests of past data)."""

    now: str | None = Field(
        default=None, description="ISO 8601 instant; empty means the current time"
    )

    def instant(self) -> datetime | None:
        """``now`` as an aware UTC datetime, or None."""
        if not self.now:
            return None
        parsed = datetime.fromisoformat(self.now)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@op(ins={"after": In(Nothing)}, description="Refresh positions/last_positions (one transaction).")
def refresh_last_positions_op(
    context: OpExecutionContext, config: LastPositionsConfig, warehouse: WarehouseResource
) -> None:
    """The last step of ingestion and replay runs."""
    metadata = refresh_last_positions(warehouse, config.instant())
    context.log.info(f"last positions: {metadata['dagster/row_count']} track(s)")
    context.log_event(AssetMaterialization(asset_key=LAST_POSITIONS, metadata=metadata))


@asset(
    key=POSITIONS,
    group_name=GROUP,
    kinds=KINDS,
    deps=[ANCHORAGES],
    partitions_def=positions_daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    description="Vessel positions from NAF files, enriched (at port, distance, speed, fishing, "
    "time at sea), one table partition per day. Rows arrive through positions_ingest_job; "
    "materialising days (a backfill) re-enriches every track present in them from its last "
    "port call before them, e.g. after the anchorages changed.",
    metadata=table_metadata("positions.positions", POSITIONS_COLUMNS),
)
def positions(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Re-enrich the selected days (one run for a whole backfill range)."""
    window = context.partition_time_window
    start, end = window.start, window.end
    anchorages = _anchorages(warehouse, context.log)
    with warehouse.adbc() as conn:
        store.ensure_partitions(
            conn, (start.date() + timedelta(days=n) for n in range((end - start).days))
        )
        updated = store.reenrich_since(conn, start, anchorages)
        conn.commit()
        count = store.count_positions(conn, start, end)
        conn.commit()
    context.log.info(f"{start:%Y-%m-%d}..{end:%Y-%m-%d}: {count} positions, {updated} re-enriched")
    return MaterializeResult(
        metadata=row_count(count, rows_updated=updated, window=f"{start} .. {end}")
    )


@asset(
    key=LAST_POSITIONS,
    group_name=GROUP,
    kinds=KINDS,
    deps=[POSITIONS, VESSELS],
    description="The last known position of every track: latest enriched position, emission "
    "period, estimated current position (up to 2 h ahead), vessel from reference.vessels. "
    "A track that stops emitting keeps its last row.",
    metadata=table_metadata("positions.last_positions", LAST_POSITIONS_COLUMNS),
)
def last_positions(config: LastPositionsConfig, warehouse: WarehouseResource) -> MaterializeResult:
    """Recompute at the current instant (or the configured one)."""
    return MaterializeResult(metadata=refresh_last_positions(warehouse, config.instant()))


@op(
    out=Out(Nothing),
    description="Parse the quarantined NAF lines again; store and release those that now parse.",
)
def replay_naf_quarantine(context: OpExecutionContext, warehouse: WarehouseResource) -> None:
    """After a parser fix: move what now parses from the quarantine into the positions."""
    anchorages = _anchorages(warehouse, context.log)
    with warehouse.adbc() as conn:
        result = store.replay_quarantine(conn, anchorages)
        conn.commit()
    context.log.info(
        f"replayed {result.replayed} line(s) ({result.load.inserted} new positions); "
        f"{result.still_failing} still failing"
    )
    for day in sorted(result.load.days):
        context.log_event(
            AssetMaterialization(
                asset_key=POSITIONS,
                partition=day.isoformat(),
                metadata={"source": "quarantine replay", "replayed": result.replayed},
            )
        )


class PartitionMaintenanceConfig(Config):
    """How far ahead to create partitions, and the retention (None: POSITIONS_RETENTION_DAYS)."""

    days_ahead: int = Field(default=PARTITIONS_AHEAD_DAYS, ge=0)
    retention_days: int | None = Field(default=None, ge=1)


def maintain_partitions(
    warehouse: WarehouseResource, today: date, days_ahead: int, retention_days: int
) -> tuple[list[str], list[date]]:
    """Create the coming days' partitions and drop those past retention (one transaction)."""
    with warehouse.adbc() as conn:
        created = store.ensure_partitions_ahead(conn, today, days_ahead)
        dropped = store.apply_retention(conn, today, retention_days)
        conn.commit()
    return created, dropped


@op(description="Create the coming days' positions partitions; drop those past retention.")
def maintain_positions_partitions(
    context: OpExecutionContext, config: PartitionMaintenanceConfig, warehouse: WarehouseResource
) -> None:
    """Daily upkeep of positions.positions."""
    retention = config.retention_days or int(setting_number("POSITIONS_RETENTION_DAYS") or 400)
    today = datetime.now(UTC).date()
    created, dropped = maintain_partitions(warehouse, today, config.days_ahead, retention)
    context.log.info(
        f"partitions ensured up to {today + timedelta(days=config.days_ahead)} "
        f"({len(created)} checked); {len(dropped)} dropped (retention {retention} days)"
    )
    context.add_output_metadata(
        {"ensured": len(created), "dropped": [d.isoformat() for d in dropped]}
    )


def iter_days(start: date, end: date) -> Iterator[date]:
    """Days in [start, end)."""
    day = start
    while day < end:
        yield day
        day += timedelta(days=1)
