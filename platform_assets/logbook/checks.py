"""Checks of the logbook: nothing waits in the quarantine.

The check runs with each ingestion (a `check_spec` of `logbook_messages`), so a file with a bad
message shows a warning on the reports asset at once; `logbook_replay_job` empties it after a fix.
"""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue

from resources.warehouse import WarehouseResource, fetch_one

REPORTS = AssetKey(["logbook", "logbook_reports"])
QUARANTINE_CHECK = "no_quarantined_messages"


def _quarantine_summary(warehouse: WarehouseResource) -> tuple[int, list[dict]]:
    with warehouse.connect() as conn:
        count = fetch_one(conn, "SELECT count(*) FROM logbook.logbook_quarantine")[0]
        sample = conn.execute(
            "SELECT source_file, member, left(error, 200) FROM logbook.logbook_quarantine "
            "ORDER BY last_attempt_at DESC LIMIT 5"
        ).fetchall()
    return count, [{"file": f, "member": m, "error": e} for f, m, e in sample]


def quarantine_check(warehouse: WarehouseResource) -> AssetCheckResult:
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
