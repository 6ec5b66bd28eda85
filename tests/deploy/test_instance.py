"""deploy/dagster.yaml (and the Nomad job's instance) load into a real Dagster instance on
PostgreSQL, with the classes and the run-monitoring policy a service needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster
import dagster_docker
import dagster_postgres
import pytest

from resources.settings import SETTINGS
from resources.warehouse import DatabaseUrls
from tests.deploy.deployfiles import INSTANCE, NOMAD_JOBS, load_hcl


@pytest.fixture
def instance_env(database: DatabaseUrls, monkeypatch: pytest.MonkeyPatch) -> DatabaseUrls:
    """The variables the instance reads, pointing at this test's database."""
    monkeypatch.setenv("DAGSTER_PG_URL", database.dagster)
    monkeypatch.setenv("DATABASE_URL", database.libpq)
    return database


def _load(config_text: str, home: Path) -> dagster.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(config_text)
    return dagster.DagsterInstance.from_config(str(home))


def _assert_never_orphans(instance: dagster.DagsterInstance, resumable: bool) -> None:
    """Run monitoring fails (or resumes) runs whose worker died; retries only crashed workers."""
    assert instance.run_monitoring_enabled
    assert 0 < instance.run_monitoring_start_timeout_seconds <= 900
    assert 0 < instance.run_monitoring_cancel_timeout_seconds <= 900
    if resumable:
        assert instance.run_launcher.supports_resume_run
        assert 1 <= instance.run_monitoring_max_resume_run_attempts <= 3
    else:
        assert instance.run_monitoring_max_resume_run_attempts == 0
    assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
    assert instance.run_retries_retry_on_asset_or_op_failure is False


def _tag_limits(instance: dagster.DagsterInstance) -> dict[str, dict]:
    coordinator = instance.run_coordinator
    assert isinstance(coordinator, dagster.QueuedRunCoordinator)
    assert coordinator.inst_data is not None
    limits = coordinator.inst_data.config_dict["tag_concurrency_limits"]
    return {limit["key"]: limit for limit in limits}


def test_the_production_instance_loads_with_postgres_queue_and_docker_launcher(
    instance_env: DatabaseUrls, tmp_path: Path
) -> None:
    with _load(INSTANCE.read_text(), tmp_path / "home") as instance:
        assert isinstance(instance.run_storage, dagster_postgres.PostgresRunStorage)
        assert isinstance(instance.event_log_storage, dagster_postgres.PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, dagster_postgres.PostgresScheduleStorage)
        launcher = instance.run_launcher
        assert isinstance(launcher, dagster_docker.DockerRunLauncher)
        config = launcher.inst_data.config_dict
        assert config["network"] == "fishnet"
        forwarded = set(config["env_vars"])
        assert forwarded >= {"DATABASE_URL", "DAGSTER_PG_URL", "SOURCE_DB_URL", "SOURCE_DB_SCHEMA"}
        assert forwarded <= set(SETTINGS)
        volumes = dict(v.split(":")[1::-1] for v in config["container_kwargs"]["volumes"])
        assert volumes == {
            "/var/lib/fishnet": "fishnet-data",
            "/opt/dagster/storage": "fishnet-dagster-storage",
        }
        # compute logs live on the shared volume, so the webserver shows a removed run's output
        logs: Any = instance.compute_log_manager  # a ConfigurableClass: it has inst_data
        assert str(logs.inst_data.config_dict["base_dir"]).startswith("/opt/dagster/storage/")
        _assert_never_orphans(instance, resumable=True)
        limits = _tag_limits(instance)
        assert "dagster/backfill" in limits and "dagster/sensor_name" in limits
        assert instance.get_settings("sensors")["use_threads"] is True
        # the instance works: the storage answers
        assert instance.get_runs_count() == 0


def test_the_storage_url_must_use_psycopg2() -> None:
    """With SQLAlchemy 2.1, postgresql:// picks psycopg 3 and dagster-postgres' NOTIFY fails."""
    text = (Path(INSTANCE).parent / "docker-compose.yml").read_text()
    assert "DAGSTER_PG_URL: postgresql+psycopg2://" in text


@pytest.mark.parametrize("job_file", NOMAD_JOBS, ids=[p.name for p in NOMAD_JOBS])
def test_the_nomad_instance_loads_and_never_orphans_runs(
    job_file: Path, instance_env: DatabaseUrls, tmp_path: Path
) -> None:
    locals_ = {}
    for block in load_hcl(job_file)["locals"]:
        locals_.update(block)
    text = locals_["dagster_yaml"]
    assert "{{" not in text, "the instance config is not a template"
    with _load(text, tmp_path / "home") as instance:
        assert isinstance(instance.run_storage, dagster_postgres.PostgresRunStorage)
        # runs execute in the code-server allocation: that launcher cannot resume a run
        assert isinstance(instance.run_launcher, dagster.DefaultRunLauncher)
        _assert_never_orphans(instance, resumable=False)
        assert "dagster/backfill" in _tag_limits(instance)
