"""Dagster layer of the logbook: ingest inbox files, report what was stored, replay the quarantine.

The ingestion uses the cross-cutting operations (platform_assets/ops): each file is an item of the
ingestion catalog (committed with its messages), each run's figures go to `ops.run_metrics`
(compared with their usual level by `checks.usual_inbox_volume`), and under dry run (tag
`fishnet/dry_run=true` or FISHNET_DRY_RUN) files are read, parsed and stored in a transaction that
is rolled back, so the counts are exact and nothing stays.
"""

import time
from pathlib import Path
from typing import Literal

from dagster import (
    AssetCheckSpec,
    AssetKey,
    AssetMaterialization,
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

from platform_assets.logbook import columns
from platform_assets.logbook.checks import (
    INGEST_JOB,
    INGEST_SOURCE,
    QUARANTINE_CHECK,
    quarantine_check,
)
from platform_assets.logbook.inbox import (
    InboxFile,
    inbox_file_at,
    is_inbox_file,
    list_inbox,
    read_messages,
)
from platform_assets.logbook.load import (
    LoadResult,
    ingest,
    replay_quarantine,
)
from platform_assets.logbook.parse import ERS_COMPILED
from platform_assets.ops.catalog import CatalogItem, ingested_hashes, record_item
from platform_assets.ops.dry_run import SAMPLE_ROWS, DryRun
from platform_assets.ops.metrics import RunMetrics, record_run_metrics
from platform_assets.table_metadata import row_count, table_metadata
from resources.inboxes import LogbookInboxResource
from resources.warehouse import WarehouseResource, fetch_one

DOMAIN = "logbook"
RAW_MESSAGES = AssetKey(["logbook", "logbook_raw_messages"])
REPORTS = AssetKey(["logbook", "logbook_reports"])
RESOLVED = AssetKey(["logbook", "logbook_reports_resolved"])
SAMPLE_COLUMNS = ("operation_number", "operation_type", "log_type", "report_id", "cfr")
# The reports this transaction inserted, newest first (an index scan from the top of `id`).
_SAMPLE_SQL = (
    f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM logbook.logbook_reports "
    "WHERE xmin = pg_current_xact_id()::xid ORDER BY id DESC LIMIT %s"
)


class LogbookIngestConfig(Config):
    """Which files to ingest."""

    files: list[str] = Field(
        default_factory=list,
        description="inbox file names or paths; empty means every inbox file not yet ingested",
    )
    force: bool = Field(
        default=False, description="ingest again files the catalog already lists (idempotent)"
    )


def _requested_files(inbox: Path, names: list[str]) -> tuple[list[InboxFile], list[str]]:
    """The files a run asks for (names in the inbox or absolute paths; all inbox files when
    none is named), and the names that are not there (or not zip/XML)."""
    if not names:
        return list_inbox(inbox), []
    paths = dict.fromkeys(inbox / name for name in names)  # an absolute name replaces the inbox
    found = [path for path in paths if is_inbox_file(path)]
    missing = [str(path) for path in paths if path not in found]
    return [inbox_file_at(path) for path in found], missing


def _select_files(
    config: LogbookIngestConfig, inbox: Path, warehouse: WarehouseResource
) -> tuple[list[InboxFile], int, list[str]]:
    """The requested files not yet in the catalog (all of them with ``force``), how many were
    skipped as already ingested, and the requested names not found."""
    requested, missing = _requested_files(inbox, config.files)
    if config.force:
        return requested, 0, missing
    with warehouse.connect() as conn:
        done = ingested_hashes(conn, DOMAIN, [f.sha256 for f in requested])
    return [f for f in requested if f.sha256 not in done], len(done), missing


def catalog_item(inbox_file: InboxFile) -> CatalogItem:
    """An inbox file as a catalog item: identifier = file name, sub-identifier = content hash, as
    the inbox sensor looks files up (`ingested_hashes`: by hash, whatever the name)."""
    return CatalogItem(
        repository=DOMAIN,
        source=INGEST_SOURCE,
        identifier=inbox_file.path.name,
        sub_identifier=inbox_file.sha256,
        location=str(inbox_file.path),
        content_hash=inbox_file.sha256,
        size_bytes=inbox_file.size,
    )


@multi_asset(
    specs=[
        AssetSpec(
            RAW_MESSAGES,
            description="Every logbook message as received (XML), keyed by operation number.",
            group_name="logbook",
            kinds={"postgres", "xml"},
            metadata=table_metadata("logbook.logbook_raw_messages", columns.RAW_MESSAGES),
        ),
        AssetSpec(
            REPORTS,
            deps=[RAW_MESSAGES, AssetKey(["reference", "vessels"])],
            description="One row per logbook report (DAT, COR, DEL, RET) with its JSON value; "
            "vessels are identified by CFR, as in reference.vessels.",
            group_name="logbook",
            kinds={"postgres", "xml"},
            metadata=table_metadata("logbook.logbook_reports", columns.REPORTS),
        ),
    ],
    check_specs=[
        AssetCheckSpec(QUARANTINE_CHECK, asset=REPORTS, description="quarantine is empty")
    ],
)
def logbook_messages(
    context: OpExecutionContext,
    config: LogbookIngestConfig,
    warehouse: WarehouseResource,
    logbook_inbox: LogbookInboxResource,
):
    """Ingest inbox files: parse each message, store raw + reports, quarantine failures.

    One transaction per file, committed with its catalog entry, so a re-run skips it and a run
    that stops half-way resumes at the first file it had not committed.
    """
    inbox = logbook_inbox.path()
    dry = DryRun.from_context(context)
    files, skipped, missing = _select_files(config, inbox, warehouse)
    for name in missing:
        context.log.warning(f"requested file {name} is not a zip or XML file of {inbox}")
    context.log.info(
        f"{len(files)} file(s) to ingest from {inbox} ({skipped} already ingested)"
        + (" - DRY RUN: nothing will be kept" if dry else "")
    )
    if not ERS_COMPILED:
        context.log.warning(
            "ERS messages are parsed by the pure-Python walker (about 4x slower on that step): "
            "the compiled one (_ers_fast.pyx) was not built at install, see the README"
        )
    metrics = RunMetrics.start(INGEST_JOB, INGEST_SOURCE, context.run_id)
    metrics.details.update({"dagster_job": context.job_name, "inbox": str(inbox)})
    totals = LoadResult()
    sample: list[tuple] = []
    started = time.perf_counter()
    try:
        for number, inbox_file in enumerate(files, start=1):
            with warehouse.connect() as conn:
                # bad files and members come back as items with an error: they are quarantined
                # with their bytes while the rest of the file (and of the inbox) loads
                result = ingest(conn, read_messages(inbox_file.path))
                item = catalog_item(inbox_file).stored(
                    result.new_messages,
                    run_id=context.run_id,
                    details={
                        "messages": result.messages,
                        "new_messages": result.new_messages,
                        "reports": result.reports,
                        "quarantined": result.quarantined,
                        "conflicts": result.conflicts,
                    },
                    status="done" if not result.quarantined else "partial",
                )
                record_item(conn, item)
                if dry and result.reports and len(sample) < SAMPLE_ROWS:
                    sample += conn.execute(_SAMPLE_SQL, (SAMPLE_ROWS - len(sample),)).fetchall()
                dry.finish(conn)  # commit with its catalog item, or roll back under dry run
            totals.add(result)
            metrics.items_read += 1
            metrics.items_written += 1 if result.new_messages else 0
            metrics.items_rejected += 1 if result.quarantined else 0
            for error in result.errors[:3]:
                context.log.warning(f"{inbox_file.path.name}: {error}")
            rate = totals.messages / max(time.perf_counter() - started, 1e-9)
            context.log.info(
                f"[{number}/{len(files)}] {inbox_file.path.name}: {result.messages} messages, "
                f"{result.new_messages} new, {result.reports} reports, "
                f"{result.quarantined} quarantined ({rate:,.0f} msg/s so far)"
            )
    except Exception:
        _record_metrics(warehouse, metrics, totals, dry, "failure")
        raise
    _record_metrics(warehouse, metrics, totals, dry, "success")
    elapsed = time.perf_counter() - started
    common: dict[str, int | str] = {
        "files": len(files),
        "files_already_ingested": skipped,
        "messages": totals.messages,
        "already_known": totals.already_known,
        "quarantined": totals.quarantined,
        "conflicts": totals.conflicts,
        "inbox": str(inbox),
        "messages_per_second": round(totals.messages / elapsed) if totals.messages else 0,
        "ers_walker": "compiled" if ERS_COMPILED else "pure Python",
    }
    with warehouse.connect() as conn:
        stored_messages = fetch_one(conn, "SELECT count(*) FROM logbook.logbook_raw_messages")[0]
        stored_reports = fetch_one(conn, "SELECT count(*) FROM logbook.logbook_reports")[0]
    run_figures = metrics.as_metadata(prefix="run/")
    yield MaterializeResult(
        asset_key=RAW_MESSAGES,
        metadata={
            **row_count(stored_messages, **common, new_messages=totals.new_messages),
            **run_figures,
            **dry.would_write("logbook.logbook_raw_messages", totals.new_messages),
            **dry.would_write("ops.catalog", len(files)),
        },
    )
    yield MaterializeResult(
        asset_key=REPORTS,
        metadata={
            **row_count(stored_reports, **common, new_reports=totals.reports),
            **run_figures,
            **dry.would_write(
                "logbook.logbook_reports", totals.reports, sample, columns=SAMPLE_COLUMNS
            ),
            **dry.would_write("logbook.logbook_quarantine", totals.quarantined),
        },
    )
    yield quarantine_check(warehouse)


def _record_metrics(
    warehouse: WarehouseResource,
    metrics: RunMetrics,
    totals: LoadResult,
    dry: DryRun,
    status: Literal["success", "failure"],
) -> None:
    """Store the run's figures (messages read, stored, quarantined); nothing under dry run."""
    metrics.rows_read = totals.messages
    metrics.rows_written = totals.new_messages
    metrics.rows_rejected = totals.quarantined
    metrics.details.update({"reports": totals.reports, "conflicts": totals.conflicts})
    metrics.finish(status)
    with warehouse.connect() as conn:
        record_run_metrics(conn, metrics, dry_run=dry.enabled)


@asset(
    key=RESOLVED,
    deps=[REPORTS],
    group_name="logbook",
    description="Reports as the monitoring application reads them: deletions applied, latest "
    "corrections in place, acknowledgements attached (a view, always current).",
    kinds={"postgres", "sql"},
    metadata=table_metadata(
        "logbook.logbook_reports_resolved", columns.REPORTS + columns.RESOLVED_EXTRA
    ),
)
def logbook_reports_resolved(warehouse: WarehouseResource) -> MaterializeResult:
    """Summarise the resolved view (it needs no refresh; this records what it shows)."""
    with warehouse.connect() as conn:
        by_type = conn.execute(
            "SELECT coalesce(log_type, '-'), count(*) FROM logbook.logbook_reports_resolved "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
        acknowledged = fetch_one(
            conn,
            "SELECT count(*) FILTER (WHERE is_acknowledged), "
            "count(*) FILTER (WHERE is_acknowledged = false), count(*) FILTER (WHERE is_corrected) "
            "FROM logbook.logbook_reports_resolved",
        )
    total = sum(n for _, n in by_type)
    return MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "by_log_type": MetadataValue.json(dict(by_type)),
            "acknowledged": acknowledged[0],
            "rejected_by_hub": acknowledged[1],
            "corrected": acknowledged[2],
        }
    )


@op(description="Re-parse quarantined messages; those that now parse are stored and released.")
def replay_logbook_quarantine(context: OpExecutionContext, warehouse: WarehouseResource) -> None:
    """After a parser fix: move what now parses from the quarantine into the tables."""
    with warehouse.connect() as conn:
        result = replay_quarantine(conn)
        conn.commit()
    context.log.info(
        f"replayed {result.replayed} message(s) ({result.load.new_messages} new, "
        f"{result.load.reports} reports); {result.still_failing} still failing"
    )
    context.log_event(
        AssetMaterialization(
            asset_key=REPORTS,
            metadata={
                "replayed": result.replayed,
                "new_reports": result.load.reports,
                "still_quarantined": result.still_failing,
            },
        )
    )
