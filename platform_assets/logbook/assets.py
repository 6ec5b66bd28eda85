"""Dagster layer of the logbook: ingest inbox files, report what was stored, replay the quarantine.

The ingestion uses the cross-cutting operations (platform_assets/ops): each file is an item of the
ingestion catalog (committed with its messages), each run's figures go to `ops.run_metrics`
(compared with their usual level by `checks.usual_inbox_volume`), and under dry run (tag
`fishnet/dry_run=true`, the `dry_run` resource or FISHNET_DRY_RUN) files are read, parsed and
stored in a transaction that is rolled back, so the counts are exact and nothing stays.

Run config (`LogbookIngestConfig`, an `IncrementalConfig`): by default every inbox file the
catalog does not hold as done (whatever its modification time, so a file copied with an old one is
not missed); `start` / `end` (or `since_last_success: false`: the last day) keep the files that
arrived (modification time) in that window; `force` ingests files the catalog holds as done;
`skip_existing: false` overwrites messages already stored and derives their reports again.

The parser (lxml), the loader (psycopg) and the inbox reader are imported by the asset's body,
not by the definitions.
"""

# No `from __future__ import annotations` here: Dagster reads the annotations of the config and
# resource parameters when the definitions are built.
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dagster import (
    AssetCheckSpec,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
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
from platform_assets.ops.catalog import ingested_hashes, record_item
from platform_assets.ops.dry_run import SAMPLE_ROWS, DryRun
from platform_assets.ops.inbox_files import InboxFile
from platform_assets.ops.incremental import IncrementalConfig, Window, resolve_window, utc_now
from platform_assets.ops.metrics import RunMetrics, last_success_end, record_run_metrics
from platform_assets.table_metadata import row_count, table_metadata
from resources.inboxes import LogbookInboxResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource, fetch_one

if TYPE_CHECKING:
    from platform_assets.logbook.load import LoadResult

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


class LogbookIngestConfig(IncrementalConfig):
    """Which files to ingest, and the incremental options (see the module's docstring)."""

    files: list[str] = Field(
        default_factory=list,
        description="inbox file names or paths; empty means every inbox file not yet ingested",
    )


def arrived_at(inbox_file: InboxFile) -> datetime:
    """When a file arrived in the inbox: its modification time, in UTC."""
    return datetime.fromtimestamp(inbox_file.path.stat().st_mtime, UTC)


def explicit_window(config: IncrementalConfig, last_end: datetime | None) -> Window | None:
    """The arrival window the config asks for; None for the default (the catalog decides)."""
    if not (config.start or config.end or not config.since_last_success):
        return None
    return resolve_window(config, now=utc_now(), last_success_end=last_end)


def _requested_files(inbox: Path, names: list[str]) -> tuple[list[InboxFile], list[str]]:
    """The files a run asks for (names in the inbox or absolute paths; all inbox files when
    none is named), and the names that are not there (or not zip/XML)."""
    from platform_assets.logbook.inbox import inbox_file_at, is_inbox_file, list_inbox

    if not names:
        return list_inbox(inbox), []
    paths = dict.fromkeys(inbox / name for name in names)  # an absolute name replaces the inbox
    found = [path for path in paths if is_inbox_file(path)]
    missing = [str(path) for path in paths if path not in found]
    return [inbox_file_at(path) for path in found], missing


def _select_files(
    config: LogbookIngestConfig,
    inbox: Path,
    warehouse: WarehouseResource,
    window: Window | None,
) -> tuple[list[InboxFile], dict[str, int], list[str]]:
    """The requested files in the arrival window (when one is given) not yet in the catalog (all
    of them with ``force``), the counts of those left out (``already_ingested``,
    ``outside_window``), and the requested names not found."""
    requested, missing = _requested_files(inbox, config.files)
    left_out = {"already_ingested": 0, "outside_window": 0}
    if window is not None:
        inside = [f for f in requested if window.contains(arrived_at(f))]
        left_out["outside_window"] = len(requested) - len(inside)
        requested = inside
    if config.force:
        return requested, left_out, missing
    with warehouse.connect() as conn:
        done = ingested_hashes(conn, DOMAIN, [f.sha256 for f in requested])
    left_out["already_ingested"] = sum(1 for f in requested if f.sha256 in done)
    return [f for f in requested if f.sha256 not in done], left_out, missing


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
    dry_run: DryRunResource,
):
    """Ingest inbox files: parse each message, store raw + reports, quarantine failures.

    One transaction per file, committed with its catalog entry, so a re-run skips it and a run
    that stops half-way resumes at the first file it had not committed.
    """
    from platform_assets.logbook.inbox import read_messages
    from platform_assets.logbook.load import LoadResult, ingest
    from platform_assets.logbook.parse import ERS_COMPILED

    inbox = logbook_inbox.path()
    dry = DryRun.from_context(context, dry_run)
    with warehouse.connect() as conn:
        last_end = last_success_end(conn, INGEST_JOB, INGEST_SOURCE)
    window = explicit_window(config, last_end)
    files, left_out, missing = _select_files(config, inbox, warehouse, window)
    for name in missing:
        context.log.warning(f"requested file {name} is not a zip or XML file of {inbox}")
    context.log.info(
        f"{len(files)} file(s) to ingest from {inbox} ({left_out['already_ingested']} already "
        f"ingested, {left_out['outside_window']} arrived outside the window)"
        + (f" - DRY RUN ({dry.origin}): nothing will be kept" if dry else "")
    )
    if not ERS_COMPILED:
        context.log.warning(
            "ERS messages are parsed by the pure-Python walker (about 4x slower on that step): "
            "the compiled one (_ers_fast.pyx) was not built at install, see the README"
        )
    # the window this run covers: the one asked for, else since the last successful run (from
    # now on a first run); its end is where the next run's default window starts
    now = utc_now()
    covered = window or Window(min(last_end, now) if last_end else now, now)
    metrics = RunMetrics.start(INGEST_JOB, INGEST_SOURCE, context.run_id, window=covered)
    metrics.details.update(
        {
            "dagster_job": context.job_name,
            "inbox": str(inbox),
            "force": config.force,
            "skip_existing": config.skip_existing,
            "explicit_window": window is not None,
        }
    )
    totals = LoadResult()
    sample: list[tuple] = []
    started = time.perf_counter()
    try:
        for number, inbox_file in enumerate(files, start=1):
            with warehouse.connect() as conn:
                # bad files and members come back as items with an error: they are quarantined
                # with their bytes while the rest of the file (and of the inbox) loads
                result = ingest(
                    conn, read_messages(inbox_file.path), replace=not config.skip_existing
                )
                item = inbox_file.catalog_item(DOMAIN, INGEST_SOURCE).stored(
                    result.new_messages + result.replaced,
                    run_id=context.run_id,
                    details={
                        "messages": result.messages,
                        "new_messages": result.new_messages,
                        "replaced_messages": result.replaced,
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
            metrics.items_written += 1 if result.new_messages or result.replaced else 0
            metrics.items_rejected += 1 if result.quarantined else 0
            for error in result.errors[:3]:
                context.log.warning(f"{inbox_file.path.name}: {error}")
            rate = totals.messages / max(time.perf_counter() - started, 1e-9)
            context.log.info(
                f"[{number}/{len(files)}] {inbox_file.path.name}: {result.messages} messages, "
                f"{result.new_messages} new, {result.replaced} replaced, {result.reports} "
                f"reports, {result.quarantined} quarantined ({rate:,.0f} msg/s so far)"
            )
    except Exception:
        _record_metrics(warehouse, metrics, totals, dry, "failure")
        raise
    _record_metrics(warehouse, metrics, totals, dry, "success")
    elapsed = time.perf_counter() - started
    common: dict[str, int | str | bool] = {
        "files": len(files),
        "files_already_ingested": left_out["already_ingested"],
        "files_outside_window": left_out["outside_window"],
        "messages": totals.messages,
        "already_known": totals.already_known,
        "replaced": totals.replaced,
        "quarantined": totals.quarantined,
        "conflicts": totals.conflicts,
        "inbox": str(inbox),
        "messages_per_second": round(totals.messages / elapsed) if totals.messages else 0,
        "ers_walker": "compiled" if ERS_COMPILED else "pure Python",
        "force": config.force,
        "skip_existing": config.skip_existing,
    }
    with warehouse.connect() as conn:
        stored_messages = fetch_one(conn, "SELECT count(*) FROM logbook.logbook_raw_messages")[0]
        stored_reports = fetch_one(conn, "SELECT count(*) FROM logbook.logbook_reports")[0]
    run_figures = metrics.as_metadata(prefix="run/")
    written_messages = totals.new_messages + totals.replaced
    yield MaterializeResult(
        asset_key=RAW_MESSAGES,
        metadata={
            **row_count(stored_messages, **common, new_messages=totals.new_messages),
            **run_figures,
            **dry.would_write("logbook.logbook_raw_messages", written_messages),
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
    totals: "LoadResult",
    dry: DryRun,
    status: Literal["success", "failure"],
) -> None:
    """Store the run's figures (messages read, stored, quarantined); nothing under dry run."""
    metrics.rows_read = totals.messages
    metrics.rows_written = totals.new_messages + totals.replaced
    metrics.rows_rejected = totals.quarantined
    metrics.details.update(
        {"reports": totals.reports, "conflicts": totals.conflicts, "replaced": totals.replaced}
    )
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
def replay_logbook_quarantine(
    context: OpExecutionContext, warehouse: WarehouseResource, dry_run: DryRunResource
) -> None:
    """After a parser fix: move what now parses from the quarantine into the tables (under dry
    run: the same work, rolled back)."""
    from platform_assets.logbook.load import replay_quarantine

    dry = DryRun.from_context(context, dry_run)
    with warehouse.connect() as conn:
        result = replay_quarantine(conn)
        dry.finish(conn)
    context.log.info(
        f"{'would replay' if dry else 'replayed'} {result.replayed} message(s) "
        f"({result.load.new_messages} new, {result.load.reports} reports); "
        f"{result.still_failing} still failing"
    )
    if dry:
        return  # nothing changed: no materialization to record
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
