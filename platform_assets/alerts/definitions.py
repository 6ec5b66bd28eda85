"""The alerts domain's definitions (no sensors, no resources: the composition root adds them)."""

from dagster import Definitions

from platform_assets.alerts.assets import ALERT_ASSETS
from platform_assets.alerts.checks import ALERTS_CHECKS
from platform_assets.alerts.jobs import ALERTS_JOBS, ALERTS_SCHEDULES

defs = Definitions(
    assets=ALERT_ASSETS,
    asset_checks=ALERTS_CHECKS,
    jobs=ALERTS_JOBS,
    schedules=ALERTS_SCHEDULES,
)
