"""The logbook ingestion wired to the operations: catalog items, run metrics, usual level, dry run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import build_sensor_context, materialize

from platform_assets.logbook.assets import logbook_messages
from platform_assets.logbook.checks import INGEST_JOB, INGEST_SOURCE, usual_inbox_volume
from platform_assets.logbook.inbox import list_inbox
from platform_assets.ops.dry_run import DRY_RUN_TAG
from platform_assets.ops.metrics import RunMetrics, record_run_metrics
from platform_assets.samples.logbook import write_sample_archive
from resources.inboxes import LogbookInboxResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource
from sensors.logbook import logbook_inbox_sensor


def _resources(warehouse: WarehouseResource, inbox: Path) -> dict:
    return {
        "warehouse": warehouse,
        "logbook_inbox": LogbookInboxResource(directory=str(inbox)),
        "dry_run": DryRunResource(),
    }


def _counts(warehouse: WarehouseResource) -> dict[str, int]:
    tables = (
        "logbook.logbook_raw_messages",
        "logbook.logbook_reports",
        "logbook.logbook_quarantine",
        "ops.catalog",
        "ops.run_metrics",
    )
    with warehouse.connect() as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def test_each_file_is_a_catalog_item_and_each_run_has_its_metrics(
    warehouse: WarehouseResource, dagster_instance, tmp_path: Path
) -> None:
    write_sample_archive(tmp_path / "a.zip", count=12)  # 12 messages + 1 malformed
    resources = _resources(warehouse, tmp_path)
    result = materialize([logbook_messages], resources=resources, instance=dagster_instance)
    assert result.success
    [inbox_file] = list_inbox(tmp_path)
    with warehouse.connect() as conn:
        items = conn.execute(
            "SELECT repository, source, identifier, sub_identifier, location, content_hash, "
            "status, rows_written, run_id FROM ops.catalog"
        ).fetchall()
        metrics = conn.execute(
            "SELECT job, source, status, items_read, items_written, items_rejected, rows_read, "
            "rows_written, rows_rejected, run_id, details ->> 'dagster_job' FROM ops.run_metrics"
        ).fetchall()
    assert items == [
        (
            "logbook",
            INGEST_SOURCE,
            "a.zip",
            inbox_file.sha256,
            str(tmp_path / "a.zip"),
            inbox_file.sha256,
            "partial",  # the malformed message waits in the quarantine
            12,
            result.run_id,
        )
    ]
    assert metrics == [
        (INGEST_JOB, "inbox", "success", 1, 1, 1, 13, 12, 1, result.run_id, result.job_def.name)
    ]
    meta = result.asset_materializations_for_node("logbook_messages")[1].metadata
    assert (meta["run/rows_read"].value, meta["run/rows_written"].value) == (13, 12)
    assert meta["written/logbook.logbook_reports"].value == 12

    # a forced re-run stores nothing: the record of the run that stored the file stands
    again = materialize(
        [logbook_messages],
        resources=resources,
        instance=dagster_instance,
        run_config={"ops": {"logbook_messages": {"config": {"force": True}}}},
    )
    with warehouse.connect() as conn:
        item = conn.execute("SELECT rows_written, run_id, last_seen_run_id FROM ops.catalog")
        assert item.fetchall() == [(12, result.run_id, again.run_id)]
        assert conn.execute(
            "SELECT rows_read, rows_written FROM ops.run_metrics WHERE run_id = %s",
            (again.run_id,),
        ).fetchall() == [(13, 0)]


def test_the_usual_level_check_warns_when_the_inbox_brings_far_fewer_messages(
    warehouse: WarehouseResource, dagster_instance, tmp_path: Path
) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with warehouse.connect() as conn:
        for day in range(7):
            usual = RunMetrics.start(INGEST_JOB, INGEST_SOURCE, f"earlier-{day}")
            usual.rows_read, usual.rows_written = 100, 100
            usual.started_at = start + timedelta(days=day)
            record_run_metrics(conn, usual.finish())
    write_sample_archive(tmp_path / "small.zip", count=10)
    result = materialize(
        [logbook_messages, usual_inbox_volume],
        resources=_resources(warehouse, tmp_path),
        instance=dagster_instance,
    )
    assert result.success
    [usual_check] = [
        c for c in result.get_asset_check_evaluations() if c.check_name.startswith("usual_level")
    ]
    assert usual_check.check_name == "usual_level_logbook_ingest_job_inbox"
    assert not usual_check.passed
    assert "rows_read = 11 is 11% of its usual 100" in (usual_check.description or "")
    assert usual_check.metadata["below"].value == ["rows_read", "rows_written"]


def test_a_dry_run_parses_everything_and_keeps_nothing(
    warehouse: WarehouseResource, dagster_instance, tmp_path: Path
) -> None:
    write_sample_archive(tmp_path / "a.zip", count=8)
    resources = _resources(warehouse, tmp_path)
    before = _counts(warehouse)
    dry = materialize(
        [logbook_messages],
        resources=resources,
        instance=dagster_instance,
        tags={DRY_RUN_TAG: "true"},
    )
    assert dry.success
    assert _counts(warehouse) == before  # no message, report, quarantine, catalog or metrics row
    raw_meta, reports_meta = (
        m.metadata for m in dry.asset_materializations_for_node("logbook_messages")
    )
    assert raw_meta["dry_run"].value is True
    assert raw_meta["would_write/logbook.logbook_raw_messages"].value == 8
    assert raw_meta["would_write/ops.catalog"].value == 1
    assert reports_meta["would_write/logbook.logbook_reports"].value == 8
    assert reports_meta["would_write/logbook.logbook_quarantine"].value == 1
    sample = reports_meta["would_write_sample/logbook.logbook_reports"].value
    assert len(sample) == 5 and all(row["operation_number"] for row in sample)

    # the file is still new to the sensor, and a real run stores what the dry run announced
    with build_sensor_context(instance=dagster_instance, resources=resources) as context:
        assert [r.tags["fishnet/file"] for r in logbook_inbox_sensor(context)] == ["a.zip"]
    real = materialize([logbook_messages], resources=resources, instance=dagster_instance)
    raw_meta = real.asset_materializations_for_node("logbook_messages")[0].metadata
    assert raw_meta["written/logbook.logbook_raw_messages"].value == 8
    after = _counts(warehouse)
    assert after["logbook.logbook_raw_messages"] == before["logbook.logbook_raw_messages"] + 8
    assert (after["ops.catalog"], after["ops.run_metrics"]) == (1, 1)
