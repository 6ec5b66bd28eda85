"""The logbook inbox sensor: one run per new file (run key = file name + content hash)."""

from dagster import (
    DefaultSensorStatus,
    RunConfig,
    SensorEvaluationContext,
    sensor,
)

from platform_assets.logbook.assets import DOMAIN, LogbookIngestConfig
from platform_assets.logbook.jobs import logbook_ingest_job
from resources.inboxes import LogbookInboxResource
from resources.warehouse import WarehouseResource
from sensors.inboxes import new_file_requests


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
    # the inbox reader pulls the parser (lxml) and the loader (psycopg): loaded by a tick, not
    # by the definitions
    from platform_assets.logbook.inbox import list_inbox

    inbox = logbook_inbox.path()
    return new_file_requests(
        inbox,
        list_inbox(inbox),
        warehouse,
        DOMAIN,
        lambda f: RunConfig(ops={"logbook_messages": LogbookIngestConfig(files=[str(f.path)])}),
    )


LOGBOOK_SENSORS = [logbook_inbox_sensor]
