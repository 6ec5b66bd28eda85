"""The registry of POI sources: a new source is one module plus one entry in `SOURCE_MODULES`."""

from __future__ import annotations

import importlib

from platform_assets.pois.sources.base import Source

SOURCE_MODULES = (
    "platform_assets.pois.sources.events",
    "platform_assets.pois.sources.facilities",
)


def sources() -> dict[str, Source]:
    """Every registered source by name (each module exposes `SOURCE`)."""
    found = [importlib.import_module(name).SOURCE for name in SOURCE_MODULES]
    return {source.name: source for source in found}
