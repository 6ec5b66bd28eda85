"""Jobs and schedules of the reference domain."""

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from platform_assets.reference.assets import GROUP

reference_job = define_asset_job(
    "reference_job",
    selection=AssetSelection.groups(GROUP),
    description="Refresh every reference table (vessels from the registry, the file-based tables, "
    "anchorages) and run their checks. A failing gate keeps that table as it was.",
)

reference_daily_schedule = ScheduleDefinition(
    name="reference_daily_schedule",
    job=reference_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="reference_job every day at 05:00 UTC. STOPPED by default, like every schedule "
    "here: start it in the UI or with `dagster schedule start reference_daily_schedule`.",
)
