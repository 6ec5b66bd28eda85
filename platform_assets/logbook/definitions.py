"""The logbook domain's definitions: ingestion assets (with their quarantine check) and jobs."""

from dagster import Definitions

from platform_assets.logbook.assets import logbook_messages, logbook_reports_resolved
from platform_assets.logbook.checks import LOGBOOK_CHECKS
from platform_assets.logbook.jobs import logbook_ingest_job, logbook_replay_job

defs = Definitions(
    assets=[logbook_messages, logbook_reports_resolved],
    asset_checks=LOGBOOK_CHECKS,
    jobs=[logbook_ingest_job, logbook_replay_job],
)
