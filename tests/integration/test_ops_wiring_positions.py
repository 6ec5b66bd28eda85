"""The NAF ingestion wired to the operations (issue #17): catalog items, run metrics, the
usual-level check, dry run, and the incremental run config (window, force)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import AssetSelection, DagsterInstance, build_sensor_context, materialize

from platform_assets.ops.dry_run import DRY_RUN_TAG
from platform_assets.ops.metrics import RunMetrics, record_run_metrics
from platform_assets.positions.assets import LAST_POSITIONS, POSITIONS, last_positions, positions
from platform_assets.positions.checks import usual_naf_volume
from platform_assets.positions.inbox import INGEST_JOB, INGEST_SOURCE, list_inbox
from platform_assets.positions.jobs import positions_ingest_job
from resources.inboxes import NafInboxResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource
from sensors.positions import naf_inbox_sensor
from tests.integration.positions_helpers import START, Fix, seed_anchorages, tracks

BROKEN = "//SR//TM/POS//broken//ER//"
NOW = (START + timedelta(days=3)).isoformat()


def _resources(warehouse: WarehouseResource, inbox: Path) -> dict:
    return {
        "warehouse": warehouse,
        "naf_inbox": NafInboxResource(directory=str(inbox)),
        "dry_run": DryRunResource(),
    }


def _write(inbox: Path, name: str, fixes: list[Fix], broken: int = 0) -> Path:
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_text("\n".join([f.naf() for f in fixes] + [BROKEN] * broken) + "\n")
    return path


def _run(resources: dict, instance: DagsterInstance, config: dict | None = None, **kwargs):
    run_config = {
        "ops": {
            "ingest_naf_files": {"config": config or {}},
            "refresh_last_positions_op": {"config": {"now": NOW}},
        }
    }
    return positions_ingest_job.execute_in_process(
        run_config=run_config, resources=resources, instance=instance, **kwargs
    )


def _counts(warehouse: WarehouseResource) -> dict[str, int]:
    tables = (
        "positions.positions",
        "positions.track_state",
        "positions.naf_quarantine",
        "positions.last_positions",
        "ops.catalog",
        "ops.run_metrics",
    )
    with warehouse.connect() as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def _seed(warehouse: WarehouseResource) -> None:
    with warehouse.connect() as conn:
        seed_anchorages(conn)
        conn.commit()


def test_each_naf_file_is_a_catalog_item_and_each_run_has_its_metrics(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, tmp_path: Path
) -> None:
    _seed(warehouse)
    fixes = tracks(4, 12, seed=11)
    path = _write(tmp_path, "feed-001.naf", fixes, broken=2)
    resources = _resources(warehouse, tmp_path)
    result = _run(resources, dagster_instance)
    assert result.success
    [inbox_file] = list_inbox(tmp_path)
    with warehouse.connect() as conn:
        items = conn.execute(
            "SELECT repository, source, identifier, sub_identifier, location, content_hash, "
            "status, rows_written, run_id, (details ->> 'quarantined')::int FROM ops.catalog"
        ).fetchall()
        metrics = conn.execute(
            "SELECT job, source, status, items_read, items_written, items_rejected, rows_read, "
            "rows_written, rows_rejected, run_id, details ->> 'dagster_job' FROM ops.run_metrics"
        ).fetchall()
    assert items == [
        (
            "positions",
            "inbox",
            "feed-001.naf",
            inbox_file.sha256,
            str(path),
            inbox_file.sha256,
            "partial",  # two lines wait in the quarantine
            len(fixes),
            result.run_id,
            2,
        )
    ]
    assert metrics == [
        (
            INGEST_JOB,
            INGEST_SOURCE,
            "success",
            1,
            1,
            1,
            len(fixes) + 2,
            len(fixes),
            2,
            result.run_id,
            "positions_ingest_job",
        )
    ]
    days = [e for e in result.get_asset_materialization_events() if e.asset_key == POSITIONS]
    meta = days[0].materialization.metadata
    assert (meta["run/rows_read"].value, meta["run/rows_written"].value) == (
        len(fixes) + 2,
        len(fixes),
    )
    assert meta["written/positions.positions"].value == len(fixes)

    # the sensor has nothing to ask; a forced run reads the file again and stores nothing, and
    # the catalog keeps the record of the run that stored the file
    assert not isinstance(
        naf_inbox_sensor(build_sensor_context(instance=dagster_instance, resources=resources)),
        list,
    )
    again = _run(resources, dagster_instance, {"force": True})
    assert again.success
    with warehouse.connect() as conn:
        item = conn.execute("SELECT rows_written, run_id, last_seen_run_id FROM ops.catalog")
        assert item.fetchall() == [(len(fixes), result.run_id, again.run_id)]
        assert conn.execute(
            "SELECT rows_read, rows_written, rows_rejected FROM ops.run_metrics WHERE run_id = %s",
            (again.run_id,),
        ).fetchall() == [(len(fixes) + 2, 0, 2)]
        assert conn.execute("SELECT count(*) FROM positions.positions").fetchone()[0] == len(fixes)


def test_the_usual_level_check_warns_when_the_inbox_brings_far_fewer_positions(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, tmp_path: Path
) -> None:
    _seed(warehouse)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with warehouse.connect() as conn:
        for day in range(7):
            usual = RunMetrics.start(INGEST_JOB, INGEST_SOURCE, f"earlier-{day}")
            usual.rows_read, usual.rows_written = 5_000, 5_000
            usual.started_at = start + timedelta(days=day)
            record_run_metrics(conn, usual.finish())
        conn.commit()
    fixes = tracks(2, 6, seed=12)
    _write(tmp_path, "small.naf", fixes)
    resources = _resources(warehouse, tmp_path)
    assert _run(resources, dagster_instance).success
    checked = materialize(
        [positions, usual_naf_volume],
        resources=resources,
        instance=dagster_instance,
        selection=AssetSelection.checks(usual_naf_volume),
    )
    [evaluation] = checked.get_asset_check_evaluations()
    assert evaluation.check_name == "usual_level_positions_ingest_job_inbox"
    assert not evaluation.passed
    share = round(100 * len(fixes) / 5_000)
    assert f"rows_written = {len(fixes)} is {share}% of its usual 5000" in (
        evaluation.description or ""
    )
    assert evaluation.metadata["below"].value == ["rows_read", "rows_written"]


@pytest.mark.parametrize("set_by", ["tag", "resource config"])
def test_a_dry_run_reads_and_enriches_everything_and_keeps_nothing(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, tmp_path: Path, set_by: str
) -> None:
    _seed(warehouse)
    fixes = tracks(5, 20, seed=13)
    _write(tmp_path, "feed.naf", fixes + fixes[:7], broken=1)  # 7 repeats inside the file
    resources = _resources(warehouse, tmp_path)
    before = _counts(warehouse)
    if set_by == "tag":
        dry = _run(resources, dagster_instance, tags={DRY_RUN_TAG: "true"})
    else:
        resources_dry = {**resources, "dry_run": DryRunResource(enabled=True)}
        dry = _run(resources_dry, dagster_instance)
    assert dry.success
    assert _counts(warehouse) == before  # no position, track, quarantine, catalog, metrics row
    assert not dry.get_asset_materialization_events()  # nothing materialised, only observed
    observed = {
        e.asset_key: e.event_specific_data.asset_observation.metadata
        for e in dry.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    meta = observed[POSITIONS]
    assert meta["dry_run"].value is True
    assert meta["would_write/positions.positions"].value == len(fixes)
    assert meta["would_write/positions.naf_quarantine"].value == 1
    assert meta["would_write/ops.catalog"].value == 1
    sample = meta["would_write_sample/positions.positions"].value
    assert len(sample) == 5
    assert all(row["datetime_utc"] and row["latitude"] is not None for row in sample)
    # the refresh after it (dry too) found nothing stored to compute from
    assert observed[LAST_POSITIONS]["dagster/row_count"].value == 0

    # the file is still new to the sensor, and a real run stores what the dry run announced
    with build_sensor_context(instance=dagster_instance, resources=resources) as context:
        assert [r.tags["fishnet/file"] for r in naf_inbox_sensor(context)] == ["feed.naf"]
    real = _run(resources, dagster_instance)
    after = _counts(warehouse)
    assert after["positions.positions"] == before["positions.positions"] + len(fixes)
    assert after["positions.last_positions"] == 5
    assert (after["ops.catalog"], after["ops.run_metrics"]) == (1, 1)
    meta = next(
        e.materialization.metadata
        for e in real.get_asset_materialization_events()
        if e.asset_key == POSITIONS
    )
    assert meta["written/positions.positions"].value == len(fixes)

    # a dry refresh of last positions computes every track's row and leaves the table as it was
    with warehouse.connect() as conn:
        conn.execute("DELETE FROM positions.last_positions")
        conn.commit()
    refreshed = materialize(
        [last_positions],
        resources=resources,
        instance=dagster_instance,
        tags={DRY_RUN_TAG: "true"},
        run_config={"ops": {"positions__last_positions": {"config": {"now": NOW}}}},
    )
    meta = refreshed.get_asset_materialization_events()[0].materialization.metadata
    assert (meta["dagster/row_count"].value, meta["dry_run"].value) == (5, True)
    assert _counts(warehouse)["positions.last_positions"] == 0


def test_run_config_window_picks_files_by_arrival_and_force_takes_done_ones_again(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, tmp_path: Path
) -> None:
    _seed(warehouse)
    early = _write(tmp_path, "a-early.naf", tracks(2, 6, seed=14))
    late = _write(tmp_path, "b-late.naf", tracks(3, 6, seed=15))
    arrived = {early: datetime(2026, 11, 30, 23, 30, tzinfo=UTC)}
    arrived[late] = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    for path, moment in arrived.items():
        os.utime(path, (moment.timestamp(), moment.timestamp()))
    resources = _resources(warehouse, tmp_path)

    # 2026-12-01 in Paris is [2026-11-30T23:00Z, 2026-12-01T23:00Z): both files arrived in it
    paris = _run(
        resources,
        dagster_instance,
        {"start": "2026-12-01", "end": "2026-12-02", "timezone": "Europe/Paris"},
    )
    assert paris.success
    assert _catalogued(warehouse) == ["a-early.naf", "b-late.naf"]

    with warehouse.connect() as conn:
        conn.execute("DELETE FROM ops.catalog")
        conn.commit()
    utc_day = _run(resources, dagster_instance, {"start": "2026-12-01", "end": "2026-12-02"})
    assert _catalogued(warehouse) == ["b-late.naf"]  # a-early arrived the day before in UTC
    with warehouse.connect() as conn:
        window = conn.execute(
            "SELECT window_start, window_end FROM ops.run_metrics WHERE run_id = %s",
            (utc_day.run_id,),
        ).fetchone()
    assert window == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))

    # without force, done files are skipped; with it, they are read again (and add nothing)
    skipped = _run(resources, dagster_instance, {"files": ["b-late.naf"]})
    forced = _run(resources, dagster_instance, {"files": ["b-late.naf"], "force": True})
    with warehouse.connect() as conn:
        read = dict(
            conn.execute(
                "SELECT run_id, items_read FROM ops.run_metrics WHERE run_id = ANY(%s)",
                ([skipped.run_id, forced.run_id],),
            ).fetchall()
        )
    assert (read[skipped.run_id], read[forced.run_id]) == (0, 1)


def _catalogued(warehouse: WarehouseResource) -> list[str]:
    with warehouse.connect() as conn:
        return [
            r[0] for r in conn.execute("SELECT identifier FROM ops.catalog ORDER BY 1").fetchall()
        ]
