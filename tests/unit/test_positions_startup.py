"""Importing the positions domain's Dagster layer loads none of the heavy libraries (issue #20):
pandas, pyarrow, ADBC, h3 and the rest are imported inside the ops and assets that use them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "pandas",
    "numpy",
    "sqlalchemy",
    "httpx",
    "nomad",
    "psycopg",
    "pyarrow",
    "adbc_driver_manager",
    "adbc_driver_postgresql",
    "shapely",
    "pyproj",
    "h3",
    "lxml",
    "ortools",
)
MODULES = (
    "platform_assets.positions",
    "platform_assets.positions.definitions",
    "platform_assets.positions.assets",
    "platform_assets.positions.checks",
    "platform_assets.positions.jobs",
    "platform_assets.positions.partitions",
    "platform_assets.positions.columns",
    "platform_assets.positions.inbox",
)


def test_the_positions_dagster_layer_imports_no_heavy_library() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {list(MODULES)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
