"""End to end: the code location loads and a real job runs through `dagster job execute`,
with Dagster's own storage in PostgreSQL, exactly as users run it in CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from resources.warehouse import PROJECT_ROOT, DatabaseUrls

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_definitions_validate(dagster_env: dict[str, str]) -> None:
    result = _run(
        [str(BIN / "dagster"), "definitions", "validate", "-m", "platform_assets.definitions"],
        dagster_env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_job_execute_runs_against_postgres_storage(
    dagster_env: dict[str, str], database: DatabaseUrls
) -> None:
    result = _run(
        [
            str(BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "platform_assets.definitions",
            "-j",
            "logbook_ingest_job",
        ],
        dagster_env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with psycopg.connect(database.libpq) as conn:
        reports = conn.execute("SELECT count(*) FROM logbook.logbook_reports").fetchone()[0]
        runs = conn.execute(
            "SELECT count(*) FROM runs WHERE pipeline_name = 'logbook_ingest_job' AND status = 'SUCCESS'"
        ).fetchone()[0]
    assert reports == 15
    assert runs == 1  # the run is recorded in Dagster's PostgreSQL storage, same server


def test_fishnet_env_prints_exports_for_the_same_server(
    dagster_env: dict[str, str], database: DatabaseUrls
) -> None:
    result = _run([str(BIN / "fishnet"), "env"], dagster_env)
    assert result.returncode == 0, result.stderr
    lines = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert lines["DAGSTER_PG_URL"].strip("'").startswith("postgresql+psycopg2://")
    assert set(lines) == {"DATABASE_URL", "DAGSTER_PG_URL", "DAGSTER_HOME"}
