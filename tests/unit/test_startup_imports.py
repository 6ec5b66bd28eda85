"""Importing the definitions stays cheap: no heavy library is imported with them (issue #20).

Every Dagster process (webserver, daemon, `dagster job execute`, each run worker) imports
`platform_assets.definitions`; steps import pandas, SQLAlchemy, psycopg ... where they use them,
and the multiprocess executor's forkserver preloads them once per run (STEP_PRELOAD_MODULES).
The same probe runs on each domain's Dagster layer alone and on the resources, so a failure
names the part that went heavy.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Libraries whose import costs 0.1-2 s each: never at definition time.
HEAVY = (
    "pandas",
    "numpy",
    "sqlalchemy",
    "httpx",
    "nomad",
    "psycopg",
    "pyarrow",
    "adbc_driver_postgresql",
    "adbc_driver_manager",
    "shapely",
    "pyproj",
    "h3",
    "lxml",
    "ortools",
)

#: The Dagster layer of every domain (its face), imported alone.
DOMAIN_LAYERS = {
    domain.name: [
        f"platform_assets.{domain.name}.{face}"
        for face in ("definitions", "assets", "checks", "jobs")
        if (domain / f"{face}.py").exists()
    ]
    for domain in sorted((ROOT / "platform_assets").iterdir())
    if (domain / "definitions.py").exists()
}
MODULE_SETS = {
    "definitions": ["platform_assets.definitions"],
    **DOMAIN_LAYERS,
    "positions-inbox": [
        "platform_assets.positions.partitions",
        "platform_assets.positions.columns",
        "platform_assets.positions.inbox",
    ],
    "resources": [
        "resources.geocoder",
        "resources.poi_sources",
        "resources.poi_fixtures",
        "resources.inboxes",
        "resources.warehouse",
    ],
}

# Runs in a fresh interpreter: records, for the first import of each heavy library, the chain of
# modules being executed at that moment (innermost first), then imports the modules named.
PROBE = r"""
import importlib, importlib.abc, json, sys

HEAVY = set(json.loads(sys.argv[1]))
chains = {}


class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in chains:
            chain, frame = [], sys._getframe(1)
            while frame is not None:
                module = frame.f_globals.get("__name__", "?")
                where = module if frame.f_code.co_name == "<module>" else (
                    f"{module}.{frame.f_code.co_name}()"
                )
                if not module.startswith(("importlib", "_frozen")) and (
                    not chain or chain[-1] != where
                ):
                    chain.append(where)
                frame = frame.f_back
            chains[top] = [name, *[c for c in chain if not c.startswith("dagster")][:12]]
        return None


sys.meta_path.insert(0, Recorder())
for name in sys.argv[2:]:
    importlib.import_module(name)

loaded = sorted(h for h in HEAVY if h in sys.modules)
print(json.dumps({"loaded": loaded, "chains": {h: chains.get(h, []) for h in loaded}}))
"""


def _probe(modules: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("part", sorted(MODULE_SETS))
def test_importing_imports_no_heavy_library(part: str) -> None:
    modules = MODULE_SETS[part]
    result = _probe(modules)
    chains = result["chains"]
    assert isinstance(chains, dict)
    report = "\n".join(f"  {lib}: {' <- '.join(chain)}" for lib, chain in sorted(chains.items()))
    assert not result["loaded"], (
        f"importing {', '.join(modules)} imports heavy libraries; import them where they "
        f"are used (first importer first):\n{report}"
    )


def test_every_domain_has_its_layer_probed() -> None:
    assert {"alerts", "logbook", "pois", "positions", "processing", "reference"} <= set(
        DOMAIN_LAYERS
    )


def test_step_preload_modules_exist() -> None:
    """The forkserver ignores a module it cannot import: a renamed one must fail here instead."""
    from platform_assets.definitions import STEP_PRELOAD_MODULES

    assert "platform_assets.definitions" in STEP_PRELOAD_MODULES
    missing = [name for name in STEP_PRELOAD_MODULES if importlib.util.find_spec(name) is None]
    assert not missing, f"STEP_PRELOAD_MODULES names modules that do not exist: {missing}"


def test_executor_preloads_the_step_modules() -> None:
    """The definitions' executor is the forkserver one, preloading exactly those modules."""
    from platform_assets.definitions import STEP_PRELOAD_MODULES, defs

    executor = defs.resolve_job_def("all_assets_job").executor_def
    config = executor.apply_config_mapping({})
    assert config.success, config.errors
    assert config.value["config"]["start_method"] == {
        "forkserver": {"preload_modules": list(STEP_PRELOAD_MODULES)}
    }
