"""Jobs and schedules of the alerts domain."""

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from platform_assets.alerts.assets import (
    BEACON_MALFUNCTIONS,
    MISSING_DEP_ALERTS,
    MISSING_FAR_ALERTS,
    PENDING_ALERTS,
    POSITION_ALERTS,
    ZONES,
)

alerts_job = define_asset_job(
    "alerts_job",
    selection=AssetSelection.assets(
        ZONES,
        POSITION_ALERTS,
        MISSING_FAR_ALERTS,
        MISSING_DEP_ALERTS,
        BEACON_MALFUNCTIONS,
        PENDING_ALERTS,
    ),
    description="Load zones, compute every alert family, summarise the pending alerts.",
    tags={"fishnet/domain": "alerts"},
)

frequent_alerts_job = define_asset_job(
    "frequent_alerts_job",
    selection=AssetSelection.assets(POSITION_ALERTS, BEACON_MALFUNCTIONS, PENDING_ALERTS),
    description="Position alerts and silent beacons (the alerts that must be fresh).",
    tags={"fishnet/domain": "alerts"},
)

frequent_alerts_schedule = ScheduleDefinition(
    name="frequent_alerts_schedule",
    job=frequent_alerts_job,
    cron_schedule="*/10 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Position alerts and silent beacons every 10 minutes (STOPPED by default).",
)

alerts_schedule = ScheduleDefinition(
    name="alerts_schedule",
    job=alerts_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Every alert family hourly, missing declarations included (STOPPED by default).",
)

ALERTS_JOBS = [alerts_job, frequent_alerts_job]
ALERTS_SCHEDULES = [alerts_schedule, frequent_alerts_schedule]
