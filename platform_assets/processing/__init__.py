"""Satellite-product processing chain: harvester, orchestrator, launcher, change-feed sensors.

`defs` (this domain's Definitions) is built on first access, so importing a pure module of the
package (planner, catalogue, harvest, change_feed) does not load the Dagster layer, and
`sensors.change_feed` can import `change_feed` without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster import Definitions

__all__ = ["build_definitions", "defs"]


def build_definitions() -> Definitions:
    """The processing domain: the input asset, its jobs, schedules, sensors and the catalogue."""
    from dagster import Definitions

    from platform_assets.processing.assets import processing_input
    from platform_assets.processing.jobs import (
        PROCESSING_JOBS,
        PROCESSING_SCHEDULES,
        PROCESSING_SENSORS,
    )
    from platform_assets.processing.launcher_resource import LauncherResource
    from platform_assets.processing.resources import CatalogueResource

    return Definitions(
        assets=[processing_input],
        jobs=PROCESSING_JOBS,
        schedules=PROCESSING_SCHEDULES,
        sensors=PROCESSING_SENSORS,
        resources={"catalogue": CatalogueResource(), "launcher": LauncherResource()},
    )


def __getattr__(name: str) -> Any:
    if name == "defs":
        value = build_definitions()
        globals()["defs"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
