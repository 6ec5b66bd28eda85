"""End to end: `dagster job execute` against a stopped embedded server says so and how to recover
(issue #20), in the shell `eval "$(fishnet env)"` prepared, and that advice works there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from resources.warehouse import PROJECT_ROOT, dagster_environment, start_embedded, stop_embedded

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


@pytest.fixture
def state() -> Iterator[Path]:
    # short path: the server's socket lives in its data directory
    path = Path(f"/tmp/fishnet-down-{os.getpid()}")
    yield path
    stop_embedded(path)
    shutil.rmtree(path, ignore_errors=True)


def test_job_execute_on_a_stopped_embedded_server_explains_and_db_start_recovers(
    state: Path, tmp_path: Path
) -> None:
    urls = start_embedded(state)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env.update(dagster_environment(urls), DAGSTER_HOME=str(home), FISHNET_STATE_DIR=str(state))
    assert stop_embedded(state)  # the server dies; the shell still has its URLs

    done = subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", "platform_assets.definitions"]
        + ["-j", "reference_job"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert f"The embedded PostgreSQL at {state / 'pgdata'} is not running" in done.stderr
    assert "`fishnet db start` starts it again" in done.stderr
    assert "too many retries" not in done.stderr

    started = subprocess.run(
        [str(BIN / "fishnet"), "db", "start"], env=env, capture_output=True, text=True, timeout=300
    )
    assert started.returncode == 0, started.stderr
    listed = subprocess.run(
        [str(BIN / "dagster"), "run", "list"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
