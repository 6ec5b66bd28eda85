"""Jobs and schedules of the positions domain."""

from dagster import DefaultScheduleStatus, ScheduleDefinition, job

from platform_assets.positions.assets import (
    ingest_naf_files,
    maintain_positions_partitions,
    refresh_last_positions_op,
    replay_naf_quarantine,
)


@job(
    description="Ingest NAF inbox files into positions.positions (one run per new file when "
    "started by the NAF inbox sensor), then refresh positions.last_positions.",
    tags={"fishnet/domain": "positions"},
)
def positions_ingest_job() -> None:
    refresh_last_positions_op(after=ingest_naf_files())


@job(
    description="Parse the quarantined NAF lines again, store those that now parse, refresh "
    "positions.last_positions.",
    tags={"fishnet/domain": "positions"},
)
def positions_replay_job() -> None:
    refresh_last_positions_op(after=replay_naf_quarantine())


@job(
    description="Create the coming days' partitions of positions.positions and drop those "
    "older than POSITIONS_RETENTION_DAYS.",
    tags={"fishnet/domain": "positions"},
)
def positions_partition_maintenance_job() -> None:
    maintain_positions_partitions()


positions_partition_maintenance_schedule = ScheduleDefinition(
    name="positions_partition_maintenance_schedule",
    job=positions_partition_maintenance_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="positions_partition_maintenance_job every day at 00:15 UTC. STOPPED by default, "
    "like every schedule here: start it in the UI or with "
    "`dagster schedule start positions_partition_maintenance_schedule` (ingestion also creates "
    "the partitions it needs, so a stopped schedule only delays retention).",
)

POSITIONS_JOBS = [positions_ingest_job, positions_replay_job, positions_partition_maintenance_job]
POSITIONS_SCHEDULES = [positions_partition_maintenance_schedule]
