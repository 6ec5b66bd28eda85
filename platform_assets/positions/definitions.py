"""The positions domain's definitions (no sensors, no resources: the composition root adds them)."""

from dagster import Definitions

from platform_assets.positions.assets import last_positions, positions
from platform_assets.positions.checks import POSITIONS_CHECKS
from platform_assets.positions.jobs import POSITIONS_JOBS, POSITIONS_SCHEDULES

defs = Definitions(
    assets=[positions, last_positions],
    asset_checks=POSITIONS_CHECKS,
    jobs=POSITIONS_JOBS,
    schedules=POSITIONS_SCHEDULES,
)
