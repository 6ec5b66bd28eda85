"""Jobs and schedules of the POI domain."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    define_asset_job,
    job,
)

from platform_assets.pois.assets import replay_poi_quarantine

pois_refresh_job = define_asset_job(
    "pois_refresh_job",
    selection=AssetSelection.groups("pois"),
    description="Extract every POI source, transform what changed, load, deactivate what is gone.",
    tags={"fishnet/domain": "pois"},
)


@job(
    description="Transform the quarantined POI records again and load those that now pass.",
    tags={"fishnet/domain": "pois"},
)
def pois_replay_job() -> None:
    replay_poi_quarantine()


pois_daily_schedule = ScheduleDefinition(
    name="pois_daily_schedule",
    job=pois_refresh_job,
    cron_schedule="30 4 * * *",
    execution_timezone="Europe/Paris",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Refresh the POIs every night.",
)

POIS_JOBS = (pois_refresh_job, pois_replay_job)
POIS_SCHEDULES = [pois_daily_schedule]
