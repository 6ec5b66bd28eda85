"""Dry run set through the `dry_run` resource's run config reaches every job that writes.

The run tag and FISHNET_DRY_RUN are tested with each job (test_ops_wiring_*.py,
test_ops_publish.py); here the deployment's resource, configured in run config as the launchpad
does (`resources: dry_run: config: enabled: true`), on jobs built like the code location's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import Definitions

from platform_assets.logbook.assets import logbook_messages, logbook_reports_resolved
from platform_assets.logbook.jobs import logbook_ingest_job, logbook_replay_job
from platform_assets.ops.dry_run import DRY_RUN_TAG
from platform_assets.ops.jobs import CHUNK_ROWS, publish_job
from platform_assets.processing.assets import processing_input
from platform_assets.processing.jobs import processing_harvest_job
from platform_assets.samples.logbook import write_sample_archive
from resources.catalogue import CatalogueResource
from resources.inboxes import LogbookInboxResource
from resources.publisher import DryRunResource, PublisherResource
from resources.warehouse import WarehouseResource

DRY_BY_RESOURCE = {"resources": {"dry_run": {"config": {"enabled": True}}}}
WRITING_JOBS = ("logbook_ingest_job", "logbook_replay_job", "processing_harvest_job", "publish_job")
TABLES = (
    "logbook.logbook_raw_messages",
    "logbook.logbook_reports",
    "logbook.logbook_quarantine",
    "processing.input",
    "ops.harvest_cursor",
    "ops.catalog",
    "ops.run_metrics",
)


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FISHNET_DRY_RUN", raising=False)
    monkeypatch.delenv("CATALOGUE_URL", raising=False)


def counts(warehouse: WarehouseResource) -> dict[str, int]:
    with warehouse.connect() as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def location(warehouse: WarehouseResource, inbox: Path, publish_dir: Path) -> Definitions:
    """The jobs with the resources the code location gives them (resources.build_resources)."""
    return Definitions(
        assets=[logbook_messages, logbook_reports_resolved, processing_input],
        jobs=[logbook_ingest_job, logbook_replay_job, processing_harvest_job, publish_job],
        resources={
            "warehouse": warehouse,
            "logbook_inbox": LogbookInboxResource(directory=str(inbox)),
            "catalogue": CatalogueResource(),
            "publisher": PublisherResource(directory=str(publish_dir)),
            "dry_run": DryRunResource(),
        },
    )


def test_every_writing_job_of_the_code_location_takes_the_dry_run_resource() -> None:
    from platform_assets.definitions import defs

    for name in WRITING_JOBS:
        assert "dry_run" in defs.resolve_job_def(name).required_resource_keys, name


def test_the_resource_config_makes_ingestion_and_harvest_dry(
    warehouse: WarehouseResource, dagster_instance: Any, tmp_path: Path
) -> None:
    write_sample_archive(tmp_path / "inbox" / "a.zip", count=8)
    defs = location(warehouse, tmp_path / "inbox", tmp_path / "publish")
    before = counts(warehouse)

    ingest = defs.resolve_job_def("logbook_ingest_job")
    dry = ingest.execute_in_process(run_config=DRY_BY_RESOURCE, instance=dagster_instance)
    assert dry.success and counts(warehouse) == before
    meta = dry.asset_materializations_for_node("logbook_messages")[1].metadata
    assert meta["dry_run"].value is True
    assert meta["would_write/logbook.logbook_reports"].value == 8

    harvest = defs.resolve_job_def("processing_harvest_job")
    dry = harvest.execute_in_process(run_config=DRY_BY_RESOURCE, instance=dagster_instance)
    assert dry.success and counts(warehouse) == before
    [materialization] = dry.asset_materializations_for_node("processing__input")
    assert materialization.metadata["would_write/processing.input"].value == 8

    # a run tagged false is real even where the deployment is dry
    real = ingest.execute_in_process(
        run_config=DRY_BY_RESOURCE, instance=dagster_instance, tags={DRY_RUN_TAG: "false"}
    )
    assert real.success
    after = counts(warehouse)
    assert after["logbook.logbook_raw_messages"] == before["logbook.logbook_raw_messages"] + 8
    assert after["logbook.logbook_quarantine"] == before["logbook.logbook_quarantine"] + 1

    # the quarantine replay: same work, rolled back
    replay = defs.resolve_job_def("logbook_replay_job")
    assert replay.execute_in_process(run_config=DRY_BY_RESOURCE, instance=dagster_instance).success
    assert counts(warehouse) == after


def test_the_resource_config_makes_publishing_dry(
    warehouse: WarehouseResource, dagster_instance: Any, tmp_path: Path
) -> None:
    with warehouse.connect() as conn:
        conn.execute("CREATE TABLE public.published (id int PRIMARY KEY, name text)")
        conn.execute(
            "INSERT INTO public.published SELECT n, 'row ' || n FROM generate_series(1, 3) n"
        )
    defs = location(warehouse, tmp_path / "inbox", tmp_path / "publish")
    publish = defs.resolve_job_def("publish_job")
    config = {"ops": {"publish_relation": {"config": {"relation": "public.published"}}}}
    dry = publish.execute_in_process(
        run_config={**config, **DRY_BY_RESOURCE}, instance=dagster_instance
    )
    assert dry.success
    assert not (tmp_path / "publish").exists() or not any((tmp_path / "publish").iterdir())
    assert dry.output_for_node("publish_relation") == {"csv": 3}
    real = publish.execute_in_process(run_config=config, instance=dagster_instance)
    assert real.success
    assert [p.name for p in (tmp_path / "publish").iterdir()] == ["public.published.csv"]


def test_the_publish_job_default_chunk_is_the_publisher_s() -> None:
    from platform_assets.ops.publish import CHUNK_ROWS as PUBLISH_CHUNK_ROWS

    assert CHUNK_ROWS == PUBLISH_CHUNK_ROWS == 10_000


def test_the_code_location_shares_its_dry_run_resource_with_the_io_manager() -> None:
    """Configured at launch and nested: run config for `dry_run` reaches the IO manager."""
    from resources import build_resources

    resources = build_resources()
    assert resources["io_manager"].dry_run is resources["dry_run"]


def test_the_resource_config_reaches_the_io_manager_alerts_and_processing_ops(
    warehouse: WarehouseResource, dagster_instance: Any
) -> None:
    import pandas as pd
    from dagster import asset

    from platform_assets.alerts.assets import zones
    from platform_assets.processing.jobs import processing_orchestrator_job
    from resources.io_managers import PostgresPandasIOManager

    with warehouse.connect() as conn:
        conn.execute("CREATE TABLE public.frame_rows (a int)")

    @asset(key_prefix=["public"], metadata={"dagster/table_name": "public.frame_rows"})
    def frame_rows():  # no return annotation: under __future__ annotations it is a string
        return pd.DataFrame({"a": [1, 2, 3]})

    dry_run = DryRunResource.configure_at_launch()  # wired as resources.build_resources does
    defs = Definitions(
        assets=[frame_rows, zones],
        jobs=[processing_orchestrator_job],
        resources={
            "warehouse": warehouse,
            "io_manager": PostgresPandasIOManager(warehouse=warehouse, dry_run=dry_run),
            "dry_run": dry_run,
        },
    )
    assets_job = defs.resolve_implicit_global_asset_job_def()
    dry = assets_job.execute_in_process(run_config=DRY_BY_RESOURCE, instance=dagster_instance)
    assert dry.success
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*) FROM public.frame_rows").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM alerts.zones").fetchone()[0] == 0
    [frame] = dry.asset_materializations_for_node("public__frame_rows")
    assert frame.metadata["would_write/public.frame_rows"].value == 3
    [loaded] = dry.asset_materializations_for_node("alerts__zones")
    assert loaded.metadata["dry_run"].value is True
    assert loaded.metadata["would_write/alerts.zones"].value > 0

    plan = defs.resolve_job_def("processing_orchestrator_job")
    planned = plan.execute_in_process(run_config=DRY_BY_RESOURCE, instance=dagster_instance)
    assert planned.success
    [output] = [e for e in planned.all_node_events if e.is_successful_output]
    assert output.step_output_data.metadata["dry_run"].value is True

    real = assets_job.execute_in_process(instance=dagster_instance)
    assert real.success
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*) FROM public.frame_rows").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM alerts.zones").fetchone()[0] > 0
