"""The reference domain's definitions: its assets, checks, job and schedule."""

from dagster import Definitions

from platform_assets.reference.assets import REFERENCE_ASSETS
from platform_assets.reference.checks import VESSEL_LINK_CHECKS
from platform_assets.reference.jobs import reference_daily_schedule, reference_job

defs = Definitions(
    assets=REFERENCE_ASSETS,
    asset_checks=VESSEL_LINK_CHECKS,
    jobs=[reference_job],
    schedules=[reference_daily_schedule],
)
