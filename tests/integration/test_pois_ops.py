"""The POI assets with the cross-cutting operations (issue #17), on real PostgreSQL: each extract
is an item of the ingestion catalog, each stage records its run metrics per source, an unchanged
extract is not stored again unless `force`, a dry run keeps nothing and says what it would have
written, and the usual-level check warns when an extract shrinks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dagster import AssetKey, materialize

from platform_assets.ops.dry_run import DRY_RUN_TAG
from platform_assets.ops.metrics import RunMetrics, record_run_metrics
from platform_assets.pois.assets import build_assets
from platform_assets.pois.checks import POI_CHECKS
from platform_assets.samples.pois.fixtures import bundled_location
from resources.geocoder import GeocoderResource
from resources.poi_sources import PoiSourcesResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource

TABLES = ("poi", "address", "activity", "address_poi", "registered_poi", "poi_history")


def run(
    warehouse: WarehouseResource,
    delivery: int = 1,
    *,
    tags: dict[str, str] | None = None,
    run_config: dict[str, Any] | None = None,
    dry_run: DryRunResource | None = None,
):
    resources = {
        "warehouse": warehouse,
        "dry_run": dry_run or DryRunResource(),
        "geocoder": GeocoderResource(),
        "poi_sources": PoiSourcesResource(
            events_url=str(bundled_location("events", delivery)),
            facilities_file=str(bundled_location("facilities", delivery)),
        ),
    }
    result = materialize(
        [*build_assets(), *POI_CHECKS], resources=resources, tags=tags, run_config=run_config
    )
    assert result.success
    return result


def metadata(result, name: str) -> dict[str, Any]:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == AssetKey(["pois", name])
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def counts(warehouse: WarehouseResource) -> dict[str, int]:
    with warehouse.connect() as conn:
        tables = [f"pois.{t}" for t in TABLES] + ["pois.raw_extract", "pois.quarantine"]
        found = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
        found["ops.catalog"] = conn.execute(
            "SELECT count(*) FROM ops.catalog WHERE repository = 'pois'"
        ).fetchone()[0]
        found["ops.run_metrics"] = conn.execute(
            "SELECT count(*) FROM ops.run_metrics WHERE job LIKE 'pois_%'"
        ).fetchone()[0]
    return found


def test_each_extract_is_catalogued_and_each_stage_records_its_metrics(warehouse) -> None:
    result = run(warehouse)
    today = datetime.now(UTC).date()
    with warehouse.connect() as conn:
        catalog = conn.execute(
            "SELECT source, identifier, collection_date, content_hash, rows_written, status, "
            "run_id FROM ops.catalog WHERE repository = 'pois' ORDER BY source"
        ).fetchall()
        held = dict(
            conn.execute("SELECT source, count(*) FROM pois.raw_extract GROUP BY 1").fetchall()
        )
        metrics = {
            (job, source): (rows_read, rows_written, rows_rejected, duration)
            for job, source, rows_read, rows_written, rows_rejected, duration in conn.execute(
                "SELECT job, source, rows_read, rows_written, rows_rejected, duration_seconds "
                "FROM ops.run_metrics WHERE run_id = %s",
                (result.run_id,),
            )
        }
    assert [row[0] for row in catalog] == ["events", "facilities"]
    for source, identifier, day, content_hash, written, status, run_id in catalog:
        assert identifier == str(bundled_location(source, 1))
        assert day == today and status == "done" and run_id == result.run_id
        assert len(content_hash) == 64 and written == held[source]
    # events: 15 records read, one malformed (quarantined), 14 POIs loaded; facilities: 8
    assert metrics[("pois_extract", "events")][:3] == (15, 15, 0)
    assert metrics[("pois_transform", "events")][:3] == (15, 14, 1)
    assert metrics[("pois_load", "events")][:3] == (14, 14, 0)
    assert metrics[("pois_load", "facilities")][:3] == (8, 8, 0)
    assert all(duration > 0 for *_, duration in metrics.values())
    raw = metadata(result, "events_raw")
    assert raw["run/rows_read"] == 15 and raw["unchanged_extract_skipped"] is False


def test_an_unchanged_extract_is_not_stored_again_unless_forced(warehouse) -> None:
    first = run(warehouse)
    again = run(warehouse)
    assert metadata(again, "events_raw")["unchanged_extract_skipped"] is True
    with warehouse.connect() as conn:
        stored_by = {r[0] for r in conn.execute("SELECT DISTINCT run_id FROM pois.raw_extract")}
    assert stored_by == {first.run_id}
    assert metadata(again, "poi")["inserted"] == 0

    forced = run(warehouse, run_config={"ops": {"pois__events_raw": {"config": {"force": True}}}})
    assert metadata(forced, "events_raw")["unchanged_extract_skipped"] is False
    assert metadata(forced, "facilities_raw")["unchanged_extract_skipped"] is True
    with warehouse.connect() as conn:
        stored_by = dict(
            conn.execute("SELECT source, min(run_id) FROM pois.raw_extract GROUP BY 1").fetchall()
        )
        [(catalog_run,)] = conn.execute(
            "SELECT run_id FROM ops.catalog WHERE repository = 'pois' AND source = 'events'"
        ).fetchall()
    assert stored_by == {"events": forced.run_id, "facilities": first.run_id}
    assert catalog_run == forced.run_id


@pytest.mark.parametrize("set_by", ["tag", "resource config"])
def test_a_dry_run_keeps_nothing_and_reports_what_it_would_write(warehouse, set_by: str) -> None:
    before = counts(warehouse)
    if set_by == "tag":
        dry = run(warehouse, tags={DRY_RUN_TAG: "true"})
    else:
        dry = run(warehouse, dry_run=DryRunResource(enabled=True))
    assert counts(warehouse) == before
    raw = metadata(dry, "events_raw")
    assert raw["dry_run"] is True and raw["would_write/pois.raw_extract"] == 15
    assert [r["id"] for r in raw["would_write_sample/pois.raw_extract"]][:2] == [
        "EV-1001",
        "EV-1002",
    ]
    normalised = metadata(dry, "events_normalised")
    assert normalised["would_write/pois.normalised_record"] == 14
    assert normalised["would_write/pois.quarantine"] == 1
    assert normalised["would_write_sample/pois.normalised_record"][0]["content_hash"]
    poi = metadata(dry, "poi")
    assert poi["inserted"] == 14 + 8 and poi["would_write/pois.poi"] == 22
    assert len(poi["would_write_sample/pois.poi"]) == 5


def test_a_dry_run_of_the_second_delivery_reports_the_change_and_keeps_the_first(
    warehouse,
) -> None:
    run(warehouse, 1)
    before = counts(warehouse)
    dry = run(warehouse, 2, tags={DRY_RUN_TAG: "true"})
    poi = metadata(dry, "poi")
    assert (poi["updated"], poi["history_versions"], poi["deactivated"]) == (1, 1, 1)
    assert metadata(dry, "poi_history")["would_write/pois.poi_history"] == 1
    assert counts(warehouse) == before
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pois.poi WHERE NOT active").fetchone()[0] == 0
    real = run(warehouse, 2)
    assert (metadata(real, "poi")["updated"], metadata(real, "poi")["deactivated"]) == (1, 1)


def test_the_usual_level_check_warns_when_an_extract_shrinks(warehouse) -> None:
    start = datetime.now(UTC) - timedelta(days=8)
    with warehouse.connect() as conn:
        for day in range(7):
            metrics = RunMetrics.start("pois_extract", "events", f"history-{day}")
            metrics.rows_read = 100
            metrics.finish()
            metrics.started_at = start + timedelta(days=day)
            metrics.finished_at = metrics.started_at + timedelta(seconds=1)
            record_run_metrics(conn, metrics)
    result = run(warehouse)
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    shrunk = evaluations[("pois/events_raw", "usual_extract_volume")]
    assert not shrunk.passed and "rows_read = 15" in (shrunk.description or "")
    # facilities have no history yet: no verdict, no warning
    assert evaluations[("pois/facilities_raw", "usual_extract_volume")].passed


def test_the_replay_job_under_dry_run_keeps_the_quarantine_as_it_is(warehouse) -> None:
    from dagster import Definitions

    from platform_assets.pois import staging
    from platform_assets.pois.jobs import pois_replay_job
    from platform_assets.samples.pois.fixtures import synthetic_events

    [fixed] = synthetic_events(1)
    with warehouse.connect() as conn:
        staging.quarantine(
            conn, "events", datetime.now(UTC).date(), [(fixed, fixed["id"], "source", "x")]
        )
    job = Definitions(
        jobs=[pois_replay_job],
        resources={
            "warehouse": warehouse,
            "geocoder": GeocoderResource(),
            "dry_run": DryRunResource(),
        },
    ).resolve_job_def("pois_replay_job")
    before = counts(warehouse)
    dry = job.execute_in_process(tags={DRY_RUN_TAG: "true"})
    assert dry.success and counts(warehouse) == before
    [event] = [e for e in dry.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    meta = event.event_specific_data.materialization.metadata
    assert meta["replayed"].value == 1 and meta["would_write/pois.registered_poi"].value == 1
    assert job.execute_in_process().success
    after = counts(warehouse)
    assert (after["pois.registered_poi"], after["pois.quarantine"]) == (1, 0)
