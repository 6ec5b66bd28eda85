"""Dagster layer of the logbook: ingest inbox files, report what was stored, replay the quarantine."""

import os
import time
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    Config,
    ConfigurableResource,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    asset,
    multi_asset,
    op,
)
from pydantic import Field

from platform_assets.logbook.inbox import (
    InboxFile,
    InboxFileError,
    inbox_file_at,
    is_inbox_file,
    list_inbox,
    read_messages,
)
from platform_assets.logbook.load import (
    LoadResult,
    RawMessage,
    ingest,
    quarantine,
    replay_quarantine,
)
from platform_assets.logbook.parse import ERS_COMPILED
from platform_assets.ops.catalog import ingested_hashes, record_ingested
from resources.warehouse import WarehouseResource, fetch_one, state_dir

DOMAIN = "logbook"
RAW_MESSAGES = AssetKey(["logbook", "logbook_raw_messages"])
REPORTS = AssetKey(["logbook", "logbook_reports"])
RESOLVED = AssetKey(["logbook", "logbook_reports_resolved"])
QUARANTINE_CHECK = "no_quarantined_messages"


class LogbookInboxResource(ConfigurableResource):
    """Where logbook files arrive: `directory`, else LOGBOOK_INBOX_DIR, else <state>/inbox/logbook."""

    directory: str | None = Field(default=None, description="inbox folder of zip/XML files")

    def path(self) -> Path:
        """The inbox folder (resolved when used, not when definitions load)."""
        configured = self.directory or os.environ.get("LOGBOOK_INBOX_DIR")
        return Path(configured) if configured else state_dir() / "inbox" / "logbook"


class LogbookIngestConfig(Config):
    """Which files to ingest."""

    files: list[str] = Field(
        default_factory=list,
        description="inbox file names or paths; empty means every inbox file not yet ingested",
    )
    force: bool = Field(
        default=False, description="ingest again files the catalog already lists (idempotent)"
    )


def _quarantine_summary(warehouse: WarehouseResource) -> tuple[int, list[dict]]:
    with warehouse.connect() as conn:
        count = fetch_one(conn, "SELECT count(*) FROM logbook.logbook_quarantine")[0]
        sample = conn.execute(
            "SELECT source_file, member, left(error, 200) FROM logbook.logbook_quarantine "
            "ORDER BY last_attempt_at DESC LIMIT 5"
        ).fetchall()
    return count, [{"file": f, "member": m, "error": e} for f, m, e in sample]


def _quarantine_check(warehouse: WarehouseResource) -> AssetCheckResult:
    count, sample = _quarantine_summary(warehouse)
    return AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        asset_key=REPORTS,
        passed=count == 0,
        severity=AssetCheckSeverity.WARN,
        description="messages that failed to parse wait in logbook.logbook_quarantine; "
        "fix the parser, then run logbook_replay_job",
        metadata={"quarantined": count, "latest": MetadataValue.json(sample)},
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


@multi_asset(
    specs=[
        AssetSpec(
            RAW_MESSAGES,
            description="Every logbook message as received (XML), keyed by operation number.",
            group_name="logbook",
            metadata={"table": "logbook.logbook_raw_messages"},
        ),
        AssetSpec(
            REPORTS,
            deps=[RAW_MESSAGES],
            description="One row per logbook report (DAT, COR, DEL, RET) with its JSON value.",
            group_name="logbook",
            metadata={"table": "logbook.logbook_reports"},
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
    files, skipped, missing = _select_files(config, inbox, warehouse)
    for name in missing:
        context.log.warning(f"requested file {name} is not a zip or XML file of {inbox}")
    context.log.info(f"{len(files)} file(s) to ingest from {inbox} ({skipped} already ingested)")
    if not ERS_COMPILED:
        context.log.warning(
            "ERS messages are parsed by the pure-Python walker (about 4x slower on that step): "
            "the compiled one (_ers_fast.pyx) was not built at install, see the README"
        )
    totals = LoadResult()
    started = time.perf_counter()
    for number, inbox_file in enumerate(files, start=1):
        with warehouse.connect() as conn:
            try:
                result = ingest(conn, read_messages(inbox_file.path))
            except InboxFileError as exc:
                conn.rollback()
                # the whole file is unreadable: keep it in the quarantine as one item
                raw = RawMessage(
                    inbox_file.path.name, inbox_file.path.name, inbox_file.path.read_bytes()
                )
                result = LoadResult(messages=1, errors=[str(exc)])
                result.quarantined = quarantine(conn, [(raw, str(exc))])
            record_ingested(
                conn,
                DOMAIN,
                inbox_file.sha256,
                inbox_file.path.name,
                inbox_file.size,
                {
                    "messages": result.messages,
                    "new_messages": result.new_messages,
                    "reports": result.reports,
                    "quarantined": result.quarantined,
                },
                run_id=context.run_id,
                status="done" if not result.quarantined else "partial",
            )
            conn.commit()
        totals.add(result)
        for error in result.errors[:3]:
            context.log.warning(f"{inbox_file.path.name}: {error}")
        rate = totals.messages / max(time.perf_counter() - started, 1e-9)
        context.log.info(
            f"[{number}/{len(files)}] {inbox_file.path.name}: {result.messages} messages, "
            f"{result.new_messages} new, {result.reports} reports, {result.quarantined} quarantined "
            f"({rate:,.0f} msg/s so far)"
        )
    elapsed = time.perf_counter() - started
    common: dict[str, int | str] = {
        "files": len(files),
        "files_already_ingested": skipped,
        "messages": totals.messages,
        "already_known": totals.already_known,
        "quarantined": totals.quarantined,
        "inbox": str(inbox),
        "messages_per_second": round(totals.messages / elapsed) if totals.messages else 0,
        "ers_walker": "compiled" if ERS_COMPILED else "pure Python",
    }
    yield MaterializeResult(
        asset_key=RAW_MESSAGES, metadata={**common, "new_messages": totals.new_messages}
    )
    yield MaterializeResult(asset_key=REPORTS, metadata={**common, "new_reports": totals.reports})
    yield _quarantine_check(warehouse)


@asset(
    key=RESOLVED,
    deps=[REPORTS],
    group_name="logbook",
    description="Reports as the monitoring application reads them: deletions applied, latest "
    "corrections in place, acknowledgements attached (a view, always current).",
    metadata={"table": "logbook.logbook_reports_resolved"},
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
