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
    AssetKey,
    AssetSelection,
    AssetSpec,
    BetaWarning,
    Definitions,
    FreshnessPolicy,
    PreviewWarning,
    define_asset_job,
    multiprocess_executor,
    with_source_code_references,
)

from platform_assets.alerts import definitions as alerts
from platform_assets.logbook import definitions as logbook
from platform_assets.ops import definitions as ops
from platform_assets.pois import definitions as pois
from platform_assets.positions import definitions as positions
from platform_assets.processing import definitions as processing
from platform_assets.reference import definitions as reference
from resources import build_resources
from sensors import ALL_SENSORS

# Modules, not their `defs`: Dagster allows one Definitions object at this module's scope.
DOMAINS = [reference, positions, logbook, alerts, pois, processing, ops]

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

# Every step of a multiprocess run starts in its own process. Forked from a server that has already
# imported the definitions, a step starts in milliseconds instead of re-importing Dagster and the
# project (6-17 s each here): that is what made `dagster job execute` take minutes. Importing the
# definitions no longer imports the heavy libraries (steps import them where they use them), so
# the server preloads those too, once per run, with Dagster's Postgres storage that every step
# opens (psycopg2) and the libraries each step process would otherwise import again (upath,
# fsspec, dotenv: ~0.15 s a step here). The exact planner's ortools is left out: one step in a
# few needs it.
STEP_PRELOAD_MODULES: tuple[str, ...] = (
    "platform_assets.definitions",
    "resources.dagster_storage",
    "psycopg2.extras",
    "upath",
    "fsspec",
    "dotenv",
    "pandas",
    "pyarrow",
    "sqlalchemy",
    "psycopg",
    "adbc_driver_postgresql.dbapi",
    "shapely",
    "pyproj",
    "h3",
    "lxml.etree",
    "httpx",
    "nomad",
)
EXECUTOR = multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": list(STEP_PRELOAD_MODULES)}}}
)

# Materialises the whole asset graph but the daily-partitioned positions (they are written by the
# NAF ingestion and re-enriched by partition backfills), so that it runs without a partition key.
all_assets_job = define_asset_job(
    "all_assets_job",
    selection=AssetSelection.all() - AssetSelection.assets(AssetKey(["positions", "positions"])),
    description="Every asset of every domain, in dependency order (positions/positions is filled "
    "by positions_ingest_job and backfilled by partition).",
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
        domains = Definitions.merge(*(domain.defs for domain in DOMAINS)).map_asset_specs(
            func=apply_policies
        )
        assets = with_source_code_references(list(domains.assets or []))
    return Definitions(
        assets=assets,
        asset_checks=domains.asset_checks,
        jobs=[*(domains.jobs or []), all_assets_job],
        schedules=domains.schedules,
        sensors=ALL_SENSORS,
        resources=build_resources(),
        executor=EXECUTOR,
    )


defs = build_definitions()
