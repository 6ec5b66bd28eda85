"""The logbook inbox sensor: one run per new file (run key = file name + content hash)."""

from dagster import (
    DefaultSensorStatus,
    RunConfig,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from platform_assets.logbook.assets import DOMAIN, LogbookIngestConfig
from platform_assets.logbook.inbox import list_inbox
from platform_assets.logbook.jobs import logbook_ingest_job
from platform_assets.ops.catalog import ingested_hashes
from resources.inboxes import LogbookInboxResource
from resources.warehouse import WarehouseResource


@sensor(
    job=logbook_ingest_job,
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description="A run of logbook_ingest_job for each new file in the logbook inbox.",
)
def logbook_inbox_sensor(
    context: SensorEvaluationContext,
    warehouse: WarehouseResource,
    logbook_inbox: LogbookInboxResource,
):
    """Files already in the ingestion catalog are skipped; run keys stop a file running twice."""
    inbox = logbook_inbox.path()
    files = list_inbox(inbox)
    if not files:
        return SkipReason(f"no file in {inbox}")
    with warehouse.connect() as conn:
        done = ingested_hashes(conn, DOMAIN, [f.sha256 for f in files])
    new = [f for f in files if f.sha256 not in done]
    if not new:
        return SkipReason(f"{len(files)} file(s) in {inbox}, all ingested")
    return [
        RunRequest(
            run_key=f.run_key,
            run_config=RunConfig(
                ops={"logbook_messages": LogbookIngestConfig(files=[str(f.path)])}
            ),
            tags={"fishnet/file": f.path.name},
        )
        for f in new
    ]


LOGBOOK_SENSORS = [logbook_inbox_sensor]
