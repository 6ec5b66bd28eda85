"""Everything the reference domain defines, listed, so an accidental removal shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DefaultScheduleStatus, Definitions

from platform_assets.reference.definitions import defs as reference_defs
from resources import build_resources

TABLES = [
    "anchorages",
    "districts",
    "fishing_gear_codes",
    "fleet_segments",
    "ports",
    "species",
    "vessels",
]
CHECKS = sorted(
    [f"reference/{t}:{c}" for t in TABLES for c in ("no_large_row_drop", "unique_non_null_keys")]
    + [
        "reference/vessels:declared_gears_known",
        "reference/vessels:district_codes_known",
        "reference/vessels:registry_ports_known",
    ]
)


def _defs() -> Definitions:
    return Definitions.merge(reference_defs, Definitions(resources=build_resources()))


def test_assets_checks_job_and_schedule_are_all_there() -> None:
    defs = _defs()
    graph = defs.resolve_asset_graph()
    keys = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    assert keys == [f"reference/{t}" for t in TABLES]
    assert sorted(k.to_user_string() for k in graph.asset_check_keys) == CHECKS
    for table in TABLES:
        node = graph.get(AssetKey(["reference", table]))
        assert node.group_name == "reference"
    assert [j.name for j in defs.jobs or []] == ["reference_job"]
    assert [s.name for s in defs.schedules or []] == ["reference_daily_schedule"]
    assert {"source_db", "reference_files"} <= set(defs.resources or {})


def test_reference_job_covers_the_group_and_its_checks() -> None:
    job = _defs().resolve_job_def("reference_job")
    layer = job.asset_layer
    assert sorted(k.to_user_string() for k in layer.executable_asset_keys) == [
        f"reference/{t}" for t in TABLES
    ]
    assert sorted(k.to_user_string() for k in layer.asset_graph.asset_check_keys) == CHECKS


def test_schedule_runs_daily_at_five_utc_and_starts_stopped() -> None:
    schedule = _defs().resolve_schedule_def("reference_daily_schedule")
    assert schedule.cron_schedule == "0 5 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "reference_job"
    assert schedule.default_status == DefaultScheduleStatus.STOPPED


def test_write_modes() -> None:
    graph = _defs().resolve_asset_graph()
    modes = {t: graph.get(AssetKey(["reference", t])).metadata.get("write_mode") for t in TABLES}
    assert modes == {t: "upsert" if t == "fleet_segments" else "replace" for t in TABLES}


def test_loading_definitions_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Resolution happens when a run uses a resource: a bad value must not break loading.
    monkeypatch.setenv("SOURCE_DB_URL", "not a url")
    monkeypatch.setenv("REFERENCE_PORTS_CSV", "/nowhere/ports.csv")
    assert _defs().resolve_job_def("reference_job").name == "reference_job"


def test_source_resource_imports_no_domain() -> None:
    # A resource hands rows to the domain and never imports it (import-linter holds this too).
    # A fresh interpreter is the only place where import order is not decided by earlier tests.
    root = Path(__file__).resolve().parents[2]
    probe = (
        "import sys, resources.source_db; "
        "bad = [m for m in sys.modules if m.startswith('platform_assets')]; "
        "assert not bad, bad"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
