"""Fixtures of the end-to-end tests: the environment a user's shell would have."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from platform_assets.samples.logbook import write_sample_archive
from resources.warehouse import PROJECT_ROOT, DatabaseUrls


@pytest.fixture
def dagster_env(database: DatabaseUrls, tmp_path: Path) -> dict[str, str]:
    """This test's database for the warehouse and Dagster's storage, a Dagster home with the
    project's dagster.yaml, and an inbox holding one sample archive of 15 messages."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    inbox = tmp_path / "inbox"
    write_sample_archive(inbox / "hub.zip", count=15)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env.update(
        DATABASE_URL=database.libpq,
        DAGSTER_PG_URL=database.dagster,
        DAGSTER_HOME=str(home),
        LOGBOOK_INBOX_DIR=str(inbox),
        FISHNET_STATE_DIR=str(tmp_path / "state"),
    )
    return env
