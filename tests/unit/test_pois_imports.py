"""Importing the POI definitions and their resources stays light (issue #20's startup rule): the
loader, its SQLAlchemy ORM tables, psycopg, shapely, numpy and httpx are imported by the asset
bodies and clients that use them, not at import time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "numpy", "sqlalchemy", "httpx", "psycopg", "shapely", "pyproj", "pyarrow")
PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize(
    "modules",
    [
        ["platform_assets.pois.definitions"],
        ["platform_assets.pois.assets", "platform_assets.pois.checks", "platform_assets.pois.jobs"],
        ["resources.geocoder", "resources.poi_sources", "resources.poi_fixtures"],
    ],
)
def test_importing_the_poi_definitions_loads_no_heavy_module(modules: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_geocoder_still_works_once_asked() -> None:
    from resources.geocoder import GeocoderResource

    [place] = GeocoderResource().client().reverse_many([(41.93, 8.70)])
    assert place is not None and place.insee_code.startswith("2A")
