"""The daily partitions shared by the positions assets, jobs and schedules.

One Dagster partition is one UTC day, which is also one partition of ``positions.positions``
(migrations/versions/0010_positions.py), so a backfill of a day works on one table partition.
"""

from dagster import DailyPartitionsDefinition

POSITIONS_START_DATE = "2024-01-01"

positions_daily_partitions = DailyPartitionsDefinition(
    start_date=POSITIONS_START_DATE, timezone="UTC", end_offset=1
)
"""Days of positions; ``end_offset=1`` includes today (positions arrive during the day)."""
