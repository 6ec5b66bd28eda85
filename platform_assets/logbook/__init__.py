"""Electronic logbook (ERS3 and FLUX FA): parse, keep raw, store reports, resolve at read time.

The pure modules (parse, ers, flux) import nothing of Dagster; `definitions()` loads the
Dagster layer only when called.
"""

from dagster import Definitions


def definitions() -> Definitions:
    """This domain's assets, jobs, sensors and the inbox resource."""
    from platform_assets.logbook.assets import (
        LogbookInboxResource,
        logbook_messages,
        logbook_reports_resolved,
    )
    from platform_assets.logbook.jobs import logbook_ingest_job, logbook_replay_job
    from sensors.inboxes import logbook_inbox_sensor

    return Definitions(
        assets=[logbook_messages, logbook_reports_resolved],
        jobs=[logbook_ingest_job, logbook_replay_job],
        sensors=[logbook_inbox_sensor],
        resources={"logbook_inbox": LogbookInboxResource()},
    )
