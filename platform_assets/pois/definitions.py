"""The POI domain's definitions (no sensors, no resources: the composition root adds them:
`warehouse`, `geocoder` (GeocoderResource), `poi_sources` (PoiSourcesResource))."""

from dagster import Definitions

from platform_assets.pois.assets import build_assets
from platform_assets.pois.checks import POI_CHECKS
from platform_assets.pois.jobs import POIS_SCHEDULES, pois_refresh_job, pois_replay_job

defs = Definitions(
    assets=build_assets(),
    asset_checks=POI_CHECKS,
    jobs=[pois_refresh_job, pois_replay_job],
    schedules=POIS_SCHEDULES,
)
