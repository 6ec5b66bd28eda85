"""Dagster layer of the positions domain: ingest NAF inbox files, re-enrich days, refresh the
last positions, replay the quarantine, keep the partitions. The SQL lives in ``store``, the file
ingestion in ``ingestion``; both (pandas, pyarrow, ADBC) are imported inside the bodies that use
them, so importing the definitions stays cheap (issue #20).

Operations (platform_assets/ops): every NAF file is an item of the ingestion catalog; each
ingestion run's figures go to ``ops.run_metrics`` (job ``positions_ingest_job``, source
``inbox``; compared with their usual level by ``checks.usual_naf_volume``); under dry run (tag
``fishnet/dry_run=true``, the ``dry_run`` resource or FISHNET_DRY_RUN) every op and asset here
reads and computes as usual in transactions that are rolled back, and reports what it would have written.
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
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

from platform_assets.ops.incremental import IncrementalConfig, resolve_window, utc_now
from platform_assets.positions.inbox import DOMAIN, INGEST_JOB, INGEST_SOURCE
from platform_assets.positions.partitions import positions_daily_partitions
from platform_assets.table_metadata import row_count, table_metadata
from resources.inboxes import NafInboxResource
from resources.publisher import DryRunResource
from resources.settings import setting_number
from resources.warehouse import WarehouseResource

__all__ = ["DOMAIN", "INGEST_JOB", "INGEST_SOURCE", "NafIngestConfig"]

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


class NafIngestConfig(IncrementalConfig):
    """Which inbox files to ingest. ``force`` ingests again files the catalog holds as done;
    ``start`` / ``end`` keep the files that arrived in that window (modification time) - without
    them every pending file is taken whenever it arrived, since the catalog, not a date, says
    what is done (``since_last_success`` only sets the window recorded in the run metrics).
    Stored positions are always kept (``skip_existing``: the natural key makes a re-run add
    nothing)."""

    files: list[str] = Field(
        default_factory=list,
        description="inbox file names or paths; empty means every inbox file not yet ingested",
    )


def _anchorages(warehouse: WarehouseResource, log: Any) -> Any:
    from platform_assets.positions import store

    with warehouse.adbc() as conn:
        frame = store.read_anchorages(conn)
    if frame.empty:
        _warn_no_anchorages(log)
    return frame


def _warn_no_anchorages(log: Any) -> None:
    log.warning(
        "reference.anchorages is empty: no position will be at port (materialise "
        "reference/anchorages first)"
    )


def _end(conn: Any, dry: bool) -> None:
    """Commit, or roll back under dry run."""
    if dry:
        conn.rollback()
    else:
        conn.commit()


@op(
    out=Out(Nothing),
    description="Ingest NAF inbox files: parse, quarantine bad lines, enrich and store the rest "
    "(idempotent), one materialisation of positions/positions per day touched; each file an "
    "item of the ingestion catalog, the run's figures in ops.run_metrics. Honours dry run.",
)
def ingest_naf_files(
    context: OpExecutionContext,
    config: NafIngestConfig,
    warehouse: WarehouseResource,
    naf_inbox: NafInboxResource,
    dry_run: DryRunResource,
) -> None:
    """Files already in the ingestion catalog are skipped unless ``force``."""
    from platform_assets.ops.dry_run import DryRun
    from platform_assets.ops.metrics import RunMetrics, last_success_end, record_run_metrics
    from platform_assets.positions import ingestion

    dry = DryRun.from_context(context, dry_run)
    inbox = naf_inbox.path()
    if not config.skip_existing:
        context.log.warning("skip_existing=false ignored: stored positions are never rewritten")
    with warehouse.connect() as conn:
        last_end = last_success_end(conn, INGEST_JOB, INGEST_SOURCE)
    window = resolve_window(config, now=utc_now(), last_success_end=last_end)
    chosen = ingestion.select_files(
        warehouse,
        inbox,
        config.files,
        force=config.force,
        window=window if config.start or config.end else None,
    )
    for name in chosen.missing:
        context.log.warning(f"requested file {name} is not a NAF file of {inbox}")
    files = chosen.files
    context.log.info(
        f"{len(files)} file(s) to ingest from {inbox} ({chosen.already_ingested} already "
        f"ingested, {chosen.outside_window} outside the window)"
        + (" - DRY RUN: nothing will be kept" if dry else "")
    )
    metrics = RunMetrics.start(INGEST_JOB, INGEST_SOURCE, context.run_id, window=window)
    metrics.details.update({"dagster_job": context.job_name, "inbox": str(inbox)})

    def started(cells: int) -> None:
        if not cells:
            _warn_no_anchorages(context.log)

    def progress(number: int, inbox_file: Any, result: Any, totals: Any) -> None:
        for error in result.errors[:3]:
            context.log.warning(error)
        rate = totals.result.load.rows / max(totals.seconds, 1e-9)
        context.log.info(
            f"[{number}/{len(files)}] {inbox_file.path.name}: {result.lines} lines, "
            f"{result.load.inserted} new positions, {result.load.duplicates} already stored, "
            f"{result.load.late_tracks} track(s) re-enriched for late records, "
            f"{result.quarantined} quarantined ({rate:,.0f} positions/s so far)"
        )

    def record(totals: Any, status: Any) -> None:
        metrics.items_read = len(files)
        metrics.items_written = totals.files_with_new_positions
        metrics.items_rejected = totals.files_with_rejects
        metrics.rows_read = totals.result.load.rows + totals.result.quarantined
        metrics.rows_written = totals.result.load.inserted
        metrics.rows_rejected = totals.result.quarantined
        metrics.details.update(
            {
                "duplicates": totals.result.load.duplicates,
                "late_tracks": totals.result.load.late_tracks,
                "updated": totals.result.load.updated,
            }
        )
        metrics.finish(status)
        with warehouse.connect() as conn:
            record_run_metrics(conn, metrics, dry_run=dry.enabled)
            conn.commit()

    partial = ingestion.RunTotals()

    def keep(number: int, inbox_file: Any, result: Any, totals: Any) -> None:
        nonlocal partial
        partial = totals
        progress(number, inbox_file, result, totals)

    try:
        totals = ingestion.ingest_files(
            warehouse,
            files,
            context.run_id,
            dry_run=dry.enabled,
            on_file=keep,
            on_start=started,
        )
    except Exception:
        record(partial, "failure")
        raise
    record(totals, "success")
    result = totals.result
    figures = metrics.as_metadata(prefix="run/")
    writes = {
        **dry.would_write("positions.positions", result.load.inserted, result.load.sample),
        **dry.would_write("positions.naf_quarantine", result.quarantined),
        **dry.would_write("ops.catalog", len(files)),
    }
    if dry:
        # nothing was stored: an observation, not a materialisation of any day
        context.log_event(AssetObservation(asset_key=POSITIONS, metadata={**figures, **writes}))
    for day in [] if dry else sorted(result.load.days):
        context.log_event(
            AssetMaterialization(
                asset_key=POSITIONS,
                partition=day.isoformat(),
                metadata={"source": "inbox", "files": len(files), **figures, **writes},
            )
        )
    context.log.info(
        f"done: {len(files)} file(s), {result.lines} lines, {result.load.inserted} new "
        f"positions, {result.load.duplicates} already stored, {result.quarantined} quarantined"
        + (" (dry run: all rolled back)" if dry else "")
    )


def refresh_last_positions(
    warehouse: WarehouseResource, now: datetime | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Refresh positions.last_positions in one transaction (rolled back under dry run, after
    reading what it would hold); what to report."""
    from platform_assets.positions import store

    instant = now or datetime.now(UTC)
    with warehouse.adbc() as conn:
        count = store.refresh_last_positions(conn, instant)
        frame = store.read_last_positions(conn)
        _end(conn, dry_run)
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
    context: OpExecutionContext,
    config: LastPositionsConfig,
    warehouse: WarehouseResource,
    dry_run: DryRunResource,
) -> None:
    """The last step of ingestion and replay runs."""
    from platform_assets.ops.dry_run import DryRun

    dry = DryRun.from_context(context, dry_run)
    metadata = refresh_last_positions(warehouse, config.instant(), dry.enabled)
    context.log.info(
        f"last positions: {metadata['dagster/row_count']} track(s)"
        + (" (dry run: rolled back)" if dry else "")
    )
    metadata.update(dry.metadata())
    event = AssetObservation if dry else AssetMaterialization
    context.log_event(event(asset_key=LAST_POSITIONS, metadata=metadata))


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
def positions(
    context: AssetExecutionContext, warehouse: WarehouseResource, dry_run: DryRunResource
) -> MaterializeResult:
    """Re-enrich the selected days (one run for a whole backfill range); rolled back under
    dry run."""
    from platform_assets.ops.dry_run import DryRun
    from platform_assets.positions import store

    dry = DryRun.from_context(context, dry_run)
    window = context.partition_time_window
    start, end = window.start, window.end
    anchorages = _anchorages(warehouse, context.log)
    with warehouse.adbc() as conn:
        store.ensure_partitions(
            conn, (start.date() + timedelta(days=n) for n in range((end - start).days))
        )
        updated = store.reenrich_since(conn, start, anchorages)
        count = store.count_positions(conn, start, end)
        _end(conn, dry.enabled)
    context.log.info(f"{start:%Y-%m-%d}..{end:%Y-%m-%d}: {count} positions, {updated} re-enriched")
    return MaterializeResult(
        metadata={
            **row_count(count, window=f"{start} .. {end}"),
            **dry.would_write("positions.positions (updated)", updated),
        }
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
def last_positions(
    context: AssetExecutionContext,
    config: LastPositionsConfig,
    warehouse: WarehouseResource,
    dry_run: DryRunResource,
) -> MaterializeResult:
    """Recompute at the current instant (or the configured one); rolled back under dry run."""
    from platform_assets.ops.dry_run import DryRun

    dry = DryRun.from_context(context, dry_run)
    metadata = refresh_last_positions(warehouse, config.instant(), dry.enabled)
    return MaterializeResult(metadata={**metadata, **dry.metadata()})


@op(
    out=Out(Nothing),
    description="Parse the quarantined NAF lines again; store and release those that now parse.",
)
def replay_naf_quarantine(
    context: OpExecutionContext, warehouse: WarehouseResource, dry_run: DryRunResource
) -> None:
    """After a parser fix: move what now parses from the quarantine into the positions."""
    from platform_assets.ops.dry_run import DryRun
    from platform_assets.positions import store

    dry = DryRun.from_context(context, dry_run)
    anchorages = _anchorages(warehouse, context.log)
    with warehouse.adbc() as conn:
        result = store.replay_quarantine(conn, anchorages)
        _end(conn, dry.enabled)
    context.log.info(
        f"replayed {result.replayed} line(s) ({result.load.inserted} new positions); "
        f"{result.still_failing} still failing" + (" (dry run: rolled back)" if dry else "")
    )
    for day in [] if dry else sorted(result.load.days):
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
    warehouse: WarehouseResource,
    today: date,
    days_ahead: int,
    retention_days: int,
    dry_run: bool = False,
) -> tuple[list[str], list[date]]:
    """Create the coming days' partitions and drop those past retention (one transaction,
    rolled back under dry run)."""
    from platform_assets.positions import store

    with warehouse.adbc() as conn:
        created = store.ensure_partitions_ahead(conn, today, days_ahead)
        dropped = store.apply_retention(conn, today, retention_days)
        _end(conn, dry_run)
    return created, dropped


@op(description="Create the coming days' positions partitions; drop those past retention.")
def maintain_positions_partitions(
    context: OpExecutionContext,
    config: PartitionMaintenanceConfig,
    warehouse: WarehouseResource,
    dry_run: DryRunResource,
) -> None:
    """Daily upkeep of positions.positions."""
    from platform_assets.ops.dry_run import DryRun

    dry = DryRun.from_context(context, dry_run)
    retention = config.retention_days or int(setting_number("POSITIONS_RETENTION_DAYS") or 400)
    today = datetime.now(UTC).date()
    created, dropped = maintain_partitions(
        warehouse, today, config.days_ahead, retention, dry.enabled
    )
    context.log.info(
        f"partitions ensured up to {today + timedelta(days=config.days_ahead)} "
        f"({len(created)} checked); {len(dropped)} dropped (retention {retention} days)"
    )
    context.add_output_metadata(
        {"ensured": len(created), "dropped": [d.isoformat() for d in dropped], **dry.metadata()}
    )


def iter_days(start: date, end: date) -> Iterator[date]:
    """Days in [start, end)."""
    day = start
    while day < end:
        yield day
        day += timedelta(days=1)
