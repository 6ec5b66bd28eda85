"""Dagster's storage says plainly when its PostgreSQL is down (resources/dagster_storage.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.dagster_storage import WarehouseDagsterStorage
from resources.warehouse import WarehouseError, embedded_data_dir


def _stopped_embedded(state: Path) -> str:
    """A data directory like the embedded server's, with no server running on it."""
    pgdata = state / "pgdata"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("18\n")
    return f"postgresql+psycopg2://postgres:@/postgres?host={pgdata}"


def test_embedded_data_dir_only_for_an_embedded_socket(tmp_path: Path) -> None:
    url = _stopped_embedded(tmp_path)
    assert embedded_data_dir(url) == tmp_path / "pgdata"
    assert embedded_data_dir("postgresql://u:p@db.example:5432/x") is None
    assert embedded_data_dir(f"postgresql://postgres@/x?host={tmp_path}") is None  # not pgdata


def test_a_stopped_embedded_server_is_named_with_its_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FISHNET_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DAGSTER_PG_URL", _stopped_embedded(tmp_path))
    with pytest.raises(WarehouseError) as raised:
        WarehouseDagsterStorage.from_config_value(None, {})
    message = str(raised.value)
    assert f"embedded PostgreSQL at {tmp_path / 'pgdata'} is not running" in message
    assert "`fishnet db start`" in message
    assert "too many retries" not in message


def test_another_state_dir_is_named_in_the_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FISHNET_STATE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("DAGSTER_PG_URL", _stopped_embedded(tmp_path / "state"))
    with pytest.raises(WarehouseError, match=r"`FISHNET_STATE_DIR=\S+/state fishnet db start`"):
        WarehouseDagsterStorage.from_config_value(None, {})


def test_an_unreachable_server_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # nothing listens on port 1: dagster-postgres retries, then we explain
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://fishnet:s3cret@127.0.0.1:1/dagster")
    with pytest.raises(WarehouseError) as raised:
        WarehouseDagsterStorage.from_config_value(None, {})
    message = str(raised.value)
    assert "PostgreSQL at postgresql://fishnet:***@127.0.0.1:1/dagster, is not reachable" in message
    assert "s3cret" not in message
    assert "too many retries" not in message
