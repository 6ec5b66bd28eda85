"""The NAF inbox sensor: one positions_ingest_job run per new file (run key = name + hash)."""

from dagster import (
    DefaultSensorStatus,
    RunConfig,
    SensorEvaluationContext,
    sensor,
)

from platform_assets.positions.assets import DOMAIN, NafIngestConfig
from platform_assets.positions.inbox import list_inbox
from platform_assets.positions.jobs import positions_ingest_job
from resources.inboxes import NafInboxResource
from resources.warehouse import WarehouseResource
from sensors.inboxes import new_file_requests


@sensor(
    job=positions_ingest_job,
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description="A run of positions_ingest_job for each new file in the NAF inbox.",
)
def naf_inbox_sensor(
    context: SensorEvaluationContext,
    warehouse: WarehouseResource,
    naf_inbox: NafInboxResource,
):
    """Files already in the ingestion catalog are skipped; run keys stop a file running twice."""
    inbox = naf_inbox.path()
    return new_file_requests(
        inbox,
        list_inbox(inbox),
        warehouse,
        DOMAIN,
        lambda f: RunConfig(ops={"ingest_naf_files": NafIngestConfig(files=[str(f.path)])}),
    )


POSITIONS_SENSORS = [naf_inbox_sensor]
