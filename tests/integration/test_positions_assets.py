"""Positions through Dagster on real PostgreSQL: the ingest job, a day's re-enrichment, last
positions (identity fallback, a silent track kept), the sensor and the maintenance job."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context, materialize

from platform_assets.positions.assets import LAST_POSITIONS, POSITIONS, last_positions, positions
from platform_assets.positions.checks import (
    last_positions_one_row_per_track,
    no_quarantined_naf_lines,
)
from platform_assets.positions.jobs import (
    positions_ingest_job,
    positions_partition_maintenance_job,
)
from resources.inboxes import NafInboxResource
from resources.publisher import DryRunResource
from resources.warehouse import DatabaseUrls, WarehouseResource
from sensors.positions import naf_inbox_sensor
from tests.integration.positions_helpers import START, Fix, identities, seed_anchorages, tracks


def _resources(database: DatabaseUrls, inbox: Path) -> dict:
    return {
        "warehouse": WarehouseResource(database_url=database.libpq),
        "naf_inbox": NafInboxResource(directory=str(inbox)),
        "dry_run": DryRunResource(),
    }


def _write_inbox(inbox: Path, fixes: list[Fix]) -> Path:
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / "positions-001.naf"
    path.write_text("\n".join(f.naf() for f in fixes) + "\n//SR//broken//ER//\n")
    return path


def test_ingest_job_sensor_partitions_and_last_positions(
    database: DatabaseUrls, tmp_path: Path, dagster_instance: DagsterInstance
) -> None:
    inbox = tmp_path / "naf"
    resources = _resources(database, inbox)
    warehouse = resources["warehouse"]
    vessels = identities(6)
    with warehouse.connect() as conn:
        seed_anchorages(conn)
        # register rows known by CFR only, by external marking only, by IRCS only
        by_cfr, by_xr, by_ircs = vessels[0], vessels[3], vessels[4]
        conn.execute(
            "INSERT INTO reference.vessels (vessel_id, cfr, external_immatriculation, ircs, "
            "is_active) VALUES (1, %s, NULL, NULL, true), (2, NULL, %s, NULL, true), "
            "(3, NULL, NULL, %s, true)",
            (by_cfr[0], by_xr[1], by_ircs[2]),
        )
        conn.commit()
    fixes = tracks(6, 30)
    _write_inbox(inbox, fixes)

    sensor_context = build_sensor_context(instance=dagster_instance, resources=resources)
    requests = list(naf_inbox_sensor(sensor_context))
    assert len(requests) == 1 and requests[0].run_key.startswith("positions-001.naf:")

    now = (START + timedelta(hours=31)).isoformat()
    run_config = requests[0].run_config
    run_config["ops"]["refresh_last_positions_op"] = {"config": {"now": now}}
    result = positions_ingest_job.execute_in_process(
        run_config=run_config, resources=resources, instance=dagster_instance
    )
    assert result.success
    days = sorted(
        e.partition for e in result.get_asset_materialization_events() if e.asset_key == POSITIONS
    )
    assert days == [START.date().isoformat(), (START.date() + timedelta(days=1)).isoformat()]
    with warehouse.connect() as conn:
        stored = conn.execute("SELECT count(*) FROM positions.positions").fetchone()[0]
        quarantined = conn.execute("SELECT count(*) FROM positions.naf_quarantine").fetchone()[0]
        matched = dict(
            conn.execute(
                "SELECT vessel_id, cfr FROM positions.last_positions WHERE vessel_id IS NOT NULL"
            ).fetchall()
        )
    assert (stored, quarantined) == (len(fixes), 1)
    assert set(matched) == {1, 2, 3}

    # the file is in the catalog now: the sensor has nothing more to ask
    again = naf_inbox_sensor(build_sensor_context(instance=dagster_instance, resources=resources))
    assert not isinstance(again, list)

    # a day re-enriched from the UI (a partitioned materialisation), then last positions
    day = materialize(
        [positions, last_positions, no_quarantined_naf_lines],
        partition_key=START.date().isoformat(),
        resources=resources,
        instance=dagster_instance,
        selection=[POSITIONS],
    )
    assert day.success
    checks = {e.check_name: e.passed for e in day.get_asset_check_evaluations()}
    assert checks.get("no_quarantined_naf_lines") is False  # the broken line waits
    refreshed = materialize(
        [last_positions, last_positions_one_row_per_track],
        resources=resources,
        instance=dagster_instance,
        run_config={"ops": {"positions__last_positions": {"config": {"now": now}}}},
    )
    assert refreshed.success
    meta = refreshed.get_asset_materialization_events()[0].materialization.metadata
    assert meta["dagster/row_count"].value >= 1
    assert {e.check_name: e.passed for e in refreshed.get_asset_check_evaluations()} == {
        "last_positions_one_row_per_track": True
    }
    assert LAST_POSITIONS in {e.asset_key for e in refreshed.get_asset_materialization_events()}

    maintenance = positions_partition_maintenance_job.execute_in_process(
        resources=resources, instance=dagster_instance
    )
    assert maintenance.success
