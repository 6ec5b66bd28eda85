"""The NAF inbox sensor: one positions_ingest_job run per new file (run key = name + hash)."""

from dagster import (
    DefaultSensorStatus,
    RunConfig,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from platform_assets.ops.catalog import ingested_hashes
from platform_assets.positions.assets import DOMAIN, NafIngestConfig
from platform_assets.positions.inbox import list_inbox
from platform_assets.positions.jobs import positions_ingest_job
from resources.inboxes import NafInboxResource
from resources.warehouse import WarehouseResource


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
            run_config=RunConfig(ops={"ingest_naf_files": NafIngestConfig(files=[str(f.path)])}),
            tags={"fishnet/file": f.path.name},
        )
        for f in new
    ]


POSITIONS_SENSORS = [naf_inbox_sensor]
