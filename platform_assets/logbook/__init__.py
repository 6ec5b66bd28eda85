"""Electronic logbook (ERS3 and FLUX FA): parse, keep raw, store reports, resolve at read time."""

from dagster import Definitions

from platform_assets.logbook.assets import (
    LogbookInboxResource,
    logbook_messages,
    logbook_reports_resolved,
)
from platform_assets.logbook.jobs import logbook_ingest_job, logbook_replay_job


def definitions() -> Definitions:
    """This domain's assets, jobs and sensors (the resources are shared: see resources/)."""
    from sensors.inboxes import logbook_inbox_sensor

    return Definitions(
        assets=[logbook_messages, logbook_reports_resolved],
        jobs=[logbook_ingest_job, logbook_replay_job],
        sensors=[logbook_inbox_sensor],
        resources={"logbook_inbox": LogbookInboxResource()},
    )
