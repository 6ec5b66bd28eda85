"""Jobs of the logbook domain."""

from dagster import AssetSelection, define_asset_job, job

from platform_assets.logbook.assets import (
    RAW_MESSAGES,
    REPORTS,
    RESOLVED,
    replay_logbook_quarantine,
)

logbook_ingest_job = define_asset_job(
    "logbook_ingest_job",
    selection=AssetSelection.assets(RAW_MESSAGES, REPORTS, RESOLVED),
    description="Ingest logbook inbox files (one run per new file when started by the inbox sensor).",
)


@job(description="Re-parse the quarantined logbook messages and store those that now parse.")
def logbook_replay_job() -> None:
    replay_logbook_quarantine()
