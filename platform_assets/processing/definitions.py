"""The processing domain's definitions: the harvested inputs, the chain's tables, jobs, schedules."""

from dagster import Definitions

from platform_assets.processing.assets import PROCESSING_ASSETS
from platform_assets.processing.checks import PROCESSING_CHECKS
from platform_assets.processing.jobs import PROCESSING_JOBS, PROCESSING_SCHEDULES

defs = Definitions(
    assets=PROCESSING_ASSETS,
    asset_checks=PROCESSING_CHECKS,
    jobs=PROCESSING_JOBS,
    schedules=PROCESSING_SCHEDULES,
)
