"""The one Dagster `Definitions` of the platform: the composition root.

It collects each domain's `defs` (assets, checks, jobs, schedules), the sensors (sensors/), and the
resources (resources/), and applies the project-wide policies once: owners and tags per domain,
freshness where a cadence is promised, and links from each asset to its source code. It is the
only module that imports `sensors`.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

from dagster import (
    AssetSelection,
    AssetSpec,
    BetaWarning,
    Definitions,
    FreshnessPolicy,
    PreviewWarning,
    define_asset_job,
    with_source_code_references,
)

from platform_assets.logbook.definitions import defs as logbook_defs
from platform_assets.processing.definitions import defs as processing_defs
from platform_assets.reference.definitions import defs as reference_defs
from resources import build_resources
from sensors import ALL_SENSORS

DOMAIN_DEFS = [reference_defs, logbook_defs, processing_defs]

#: Who answers for each domain's assets (shown in the catalog and used for alerting).
OWNERS: dict[str, list[str]] = {
    "reference": ["team:fisheries-monitoring"],
    "positions": ["team:fisheries-monitoring"],
    "logbook": ["team:fisheries-monitoring"],
    "alerts": ["team:fisheries-monitoring"],
    "pois": ["team:points-of-interest"],
    "processing": ["team:earth-observation"],
    "ops": ["team:data-platform"],
}

#: Where a cadence is promised: reference tables daily, the harvest every 15 minutes.
FRESHNESS: dict[str, FreshnessPolicy] = {
    "reference": FreshnessPolicy.time_window(fail_window=timedelta(hours=26)),
}
HARVEST_FRESHNESS = FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=45), warn_window=timedelta(minutes=20)
)

# Materialises the whole asset graph: what `fishnet demo` runs, and a handy CI smoke job.
all_assets_job = define_asset_job(
    "all_assets_job",
    selection=AssetSelection.all(),
    description="Every asset of every domain, in dependency order.",
)


def apply_policies(spec: AssetSpec) -> AssetSpec:
    """Owners, a `domain` tag and the freshness policy of the asset's domain (its group)."""
    domain = spec.group_name or "default"
    spec = spec.merge_attributes(owners=OWNERS.get(domain, []), tags={"domain": domain})
    freshness = FRESHNESS.get(domain)
    if spec.key.path == ["processing", "input"]:
        freshness = HARVEST_FRESHNESS
    if freshness is not None and spec.freshness_policy is None:
        spec = spec.replace_attributes(freshness_policy=freshness)
    return spec


def build_definitions() -> Definitions:
    """Merge the domains' definitions, then attach sensors, resources and the policies."""
    with warnings.catch_warnings():  # preview/beta APIs whose result is plain metadata
        warnings.simplefilter("ignore", BetaWarning)
        warnings.simplefilter("ignore", PreviewWarning)
        domains = Definitions.merge(*DOMAIN_DEFS).map_asset_specs(func=apply_policies)
        assets = with_source_code_references(list(domains.assets or []))
    return Definitions(
        assets=assets,
        asset_checks=domains.asset_checks,
        jobs=[*(domains.jobs or []), all_assets_job],
        schedules=domains.schedules,
        sensors=ALL_SENSORS,
        resources=build_resources(),
    )


defs = build_definitions()
