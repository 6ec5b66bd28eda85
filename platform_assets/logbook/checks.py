"""Checks of the logbook: nothing waits in the quarantine, and the inbox brings its usual volume.

The quarantine check runs with each ingestion (a `check_spec` of `logbook_messages`), so a file
with a bad message shows a warning on the reports asset at once; `logbook_replay_job` empties it
after a fix. The usual-level check (`LOGBOOK_CHECKS`) compares the latest ingestion's messages
read and stored (`ops.run_metrics`, job `logbook_ingest_job`, source `inbox`) with the mean of
the 7 runs before it, and warns below half.
"""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue

from platform_assets.ops.checks import usual_level_check
from resources.warehouse import WarehouseResource, fetch_one

REPORTS = AssetKey(["logbook", "logbook_reports"])
QUARANTINE_CHECK = "no_quarantined_messages"
INGEST_JOB = "logbook_ingest_job"
"""The job name the ingestion's run metrics are kept under, whichever job materialised it (the
inbox sensor's job, the UI's 'Materialize', all_assets_job): one history for one ingestion."""
INGEST_SOURCE = "inbox"
"""The catalog and run-metrics source of the inbox files."""

usual_inbox_volume = usual_level_check(
    REPORTS,
    job=INGEST_JOB,
    source=INGEST_SOURCE,
    figures=("rows_read", "rows_written"),
    fraction=0.5,
)
LOGBOOK_CHECKS = [usual_inbox_volume]


def _quarantine_summary(warehouse: WarehouseResource) -> tuple[int, list[dict]]:
    with warehouse.connect() as conn:
        count = fetch_one(conn, "SELECT count(*) FROM logbook.logbook_quarantine")[0]
        sample = conn.execute(
            "SELECT kind, source_file, member, left(error, 200) FROM logbook.logbook_quarantine "
            "ORDER BY last_attempt_at DESC LIMIT 5"
        ).fetchall()
    return count, [{"kind": k, "file": f, "member": m, "error": e} for k, f, m, e in sample]


def quarantine_check(warehouse: WarehouseResource) -> AssetCheckResult:
    count, sample = _quarantine_summary(warehouse)
    return AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        asset_key=REPORTS,
        passed=count == 0,
        severity=AssetCheckSeverity.WARN,
        description="items wait in logbook.logbook_quarantine (kind: parse = did not parse, "
        "unreadable = a damaged or oversized file or member, conflict = another message under a "
        "stored operation number); after a fix, run logbook_replay_job",
        metadata={"quarantined": count, "latest": MetadataValue.json(sample)},
    )
