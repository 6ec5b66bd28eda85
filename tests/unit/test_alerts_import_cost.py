"""Loading the alerts definitions must not import the heavy libraries the asset bodies use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("pandas", "numpy", "shapely", "sqlalchemy", "psycopg", "pyarrow", "adbc_driver_manager")


def test_alerts_definitions_import_no_heavy_library() -> None:
    code = (
        "import json, sys\n"
        "import platform_assets.alerts.definitions\n"
        "import platform_assets.alerts.checks, platform_assets.alerts.jobs\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
