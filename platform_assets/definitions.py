"""The one Dagster `Definitions` of the platform: it only collects what each domain exposes."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from platform_assets import logbook, processing, reference
from resources import build_resources

# Materialises the whole asset graph: what `fishnet demo` runs, and a handy CI smoke job.
all_assets_job = define_asset_job(
    "all_assets_job",
    selection=AssetSelection.all(),
    description="Every asset of every domain, in dependency order.",
)


def build_definitions() -> Definitions:
    """Merge the domains' definitions and attach the shared resources and project-wide jobs."""
    domains: list[Definitions] = [
        reference.definitions(),
        logbook.definitions(),
        processing.build_definitions(),
    ]
    return Definitions.merge(
        *domains,
        Definitions(jobs=[all_assets_job], resources=build_resources()),
    )


defs = build_definitions()
