"""Each run-config option of the ingestion jobs changes what is ingested (real PostgreSQL).

Logbook inbox (catalog-driven: the window bounds the files' arrival time) and processing harvest
(time-windowed by publication date): default = since the last successful run, `start` / `end`
(with both daylight-saving changes), `since_last_success: false`, `force`, `skip_existing`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import materialize

from platform_assets.logbook.assets import logbook_messages
from platform_assets.processing.assets import HARVEST_JOB, processing_input
from platform_assets.processing.harvest import catalogue_source_key
from platform_assets.samples.logbook import write_sample_archive
from resources.catalogue import CatalogueResource
from resources.inboxes import LogbookInboxResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource

SOURCE = catalogue_source_key("SENTINEL-2", ["L2A"])
FIXTURE_L2A = 8
# the fixture catalogue's L2A products published on 2026-03-11 and 2026-03-13
MID_MARCH = {
    "4b634e4c-49a6-5cab-a551-3721a290e335",
    "e6492db5-88d6-5ccc-a1fe-54448983c6ac",
    "5aa490d4-b553-5388-bddc-d3b73ce206a8",
    "d47cd4f3-2250-53e0-bc8a-1df3f32dee79",
}


@pytest.fixture(autouse=True)
def no_catalogue_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CATALOGUE_URL", raising=False)
    monkeypatch.delenv("FISHNET_DRY_RUN", raising=False)


def query(warehouse: WarehouseResource, sql: str, *params: Any) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.execute(sql, params).fetchall()


def arrived(path: Path, at: datetime) -> Path:
    """Give an inbox file the arrival (modification) time `at`."""
    os.utime(path, (at.timestamp(), at.timestamp()))
    return path


# --- logbook inbox ---------------------------------------------------------------------------


def ingest(warehouse: WarehouseResource, inbox: Path, instance: Any, **config: Any) -> Any:
    result = materialize(
        [logbook_messages],
        resources={
            "warehouse": warehouse,
            "logbook_inbox": LogbookInboxResource(directory=str(inbox)),
            "dry_run": DryRunResource(),
        },
        instance=instance,
        run_config={"ops": {"logbook_messages": {"config": config}}},
    )
    assert result.success
    return result


def raw_meta(result: Any) -> dict[str, Any]:
    materialization = result.asset_materializations_for_node("logbook_messages")[0]
    return {k: v.value for k, v in materialization.metadata.items()}


def catalogued(warehouse: WarehouseResource) -> list[str]:
    rows = query(warehouse, "SELECT identifier FROM ops.catalog WHERE repository = 'logbook'")
    return sorted(r[0] for r in rows)


def test_logbook_default_takes_what_the_catalog_lacks_and_starts_where_the_last_run_ended(
    warehouse: WarehouseResource, dagster_instance: Any, tmp_path: Path
) -> None:
    write_sample_archive(tmp_path / "a.zip", count=5)
    first = ingest(warehouse, tmp_path, dagster_instance)
    assert raw_meta(first)["files"] == 1
    # a file that arrives with an old modification time (copied with `cp -p`) is not missed
    arrived(write_sample_archive(tmp_path / "b.zip", count=7), datetime(2020, 1, 1, tzinfo=UTC))
    second = ingest(warehouse, tmp_path, dagster_instance)
    assert (raw_meta(second)["files"], raw_meta(second)["files_already_ingested"]) == (1, 1)
    assert catalogued(warehouse) == ["a.zip", "b.zip"]
    windows = dict(
        query(
            warehouse,
            "SELECT run_id, (window_start, window_end) FROM ops.run_metrics WHERE job = %s",
            "logbook_ingest_job",
        )
    )
    # the second run covers from the end of the first run's window: "since the last success"
    assert windows[second.run_id][0] == windows[first.run_id][1]
    assert windows[second.run_id][1] > windows[first.run_id][1]


def test_logbook_start_and_end_keep_the_files_that_arrived_in_the_window(
    warehouse: WarehouseResource, dagster_instance: Any, tmp_path: Path
) -> None:
    arrived(
        write_sample_archive(tmp_path / "early.zip", count=5), datetime(2026, 11, 10, tzinfo=UTC)
    )
    arrived(
        write_sample_archive(tmp_path / "late.zip", count=7), datetime(2026, 11, 20, tzinfo=UTC)
    )
    result = ingest(warehouse, tmp_path, dagster_instance, start="2026-11-15", end="2026-11-25")
    assert (raw_meta(result)["files"], raw_meta(result)["files_outside_window"]) == (1, 1)
    assert catalogued(warehouse) == ["late.zip"]
    # an end alone: from the end of the last successful run's window (2026-11-25, above)
    ingest(warehouse, tmp_path, dagster_instance, end="2026-11-30")
    assert catalogued(warehouse) == ["late.zip"]
    # an explicit start takes the early one too (the late one is in the catalog already)
    ingest(warehouse, tmp_path, dagster_instance, start="2026-11-01", end="2026-11-30")
    assert catalogued(warehouse) == ["early.zip", "late.zip"]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "midnight", "last_inside", "next_midnight"),
    [
        # Paris springs forward on 2026-03-29: a local day of 23 hours
        ("2026-03-29", utc(2026, 3, 28, 23), utc(2026, 3, 29, 21, 59), utc(2026, 3, 29, 22)),
        # and falls back on 2026-10-25: 25 hours
        ("2026-10-25", utc(2026, 10, 24, 22), utc(2026, 10, 25, 22, 59), utc(2026, 10, 25, 23)),
    ],
)
def test_logbook_local_days_across_daylight_saving_changes(
    warehouse: WarehouseResource,
    dagster_instance: Any,
    tmp_path: Path,
    day: str,
    midnight: datetime,
    last_inside: datetime,
    next_midnight: datetime,
) -> None:
    arrived(write_sample_archive(tmp_path / "before.zip", count=3), midnight - timedelta(seconds=1))
    arrived(write_sample_archive(tmp_path / "first.zip", count=5), midnight)
    arrived(write_sample_archive(tmp_path / "last.zip", count=7), last_inside)
    arrived(write_sample_archive(tmp_path / "after.zip", count=9), next_midnight)
    following = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
    result = ingest(
        warehouse, tmp_path, dagster_instance, start=day, end=following, timezone="Europe/Paris"
    )
    assert catalogued(warehouse) == ["first.zip", "last.zip"]
    assert raw_meta(result)["files_outside_window"] == 2
    [(start, end)] = query(
        warehouse,
        "SELECT window_start, window_end FROM ops.run_metrics WHERE run_id = %s",
        result.run_id,
    )
    assert (start, end) == (midnight, next_midnight)


def test_logbook_without_since_last_success_looks_back_one_day(
    warehouse: WarehouseResource, dagster_instance: Any, tmp_path: Path
) -> None:
    arrived(
        write_sample_archive(tmp_path / "old.zip", count=5), datetime.now(UTC) - timedelta(days=3)
    )
    write_sample_archive(tmp_path / "new.zip", count=7)
    ingest(warehouse, tmp_path, dagster_instance, since_last_success=False)
    assert catalogued(warehouse) == ["new.zip"]


def test_logbook_force_reads_a_done_file_and_skip_existing_false_overwrites_its_rows(
    warehouse: WarehouseResource, dagster_instance: Any, tmp_path: Path
) -> None:
    write_sample_archive(tmp_path / "a.zip", count=12)
    ingest(warehouse, tmp_path, dagster_instance)
    tamper = "UPDATE logbook.logbook_reports SET cfr = 'TAMPERED' RETURNING id"
    assert len(query(warehouse, tamper)) == 12
    counts = (
        "SELECT count(*) FILTER (WHERE cfr = 'TAMPERED'), count(*) FROM logbook.logbook_reports"
    )

    again = ingest(warehouse, tmp_path, dagster_instance)  # the catalog says done: not read
    assert (raw_meta(again)["files"], raw_meta(again)["messages"]) == (0, 0)

    forced = ingest(
        warehouse, tmp_path, dagster_instance, force=True
    )  # read, rows kept as they are
    assert (raw_meta(forced)["files"], raw_meta(forced)["already_known"]) == (1, 12)
    assert query(warehouse, counts) == [(12, 12)]

    overwritten = ingest(warehouse, tmp_path, dagster_instance, force=True, skip_existing=False)
    meta = raw_meta(overwritten)
    assert (meta["replaced"], meta["new_messages"]) == (12, 0)
    assert meta["written/logbook.logbook_raw_messages"] == 12
    assert query(warehouse, counts) == [(0, 12)]  # reports derived again from the messages
    assert query(
        warehouse,
        "SELECT rows_written FROM ops.run_metrics WHERE run_id = %s",
        overwritten.run_id,
    ) == [(12,)]


# --- processing harvest ----------------------------------------------------------------------


def harvest(warehouse: WarehouseResource, **config: Any) -> dict[str, Any]:
    result = materialize(
        [processing_input],
        resources={
            "warehouse": warehouse,
            "catalogue": CatalogueResource(),
            "dry_run": DryRunResource(),
        },
        run_config={"ops": {"processing__input": {"config": {"sources": ["catalogue"], **config}}}},
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node("processing__input")
    return {"run_id": result.run_id} | {k: v.value for k, v in materialization.metadata.items()}


def inputs(warehouse: WarehouseResource) -> set[str]:
    return {r[0] for r in query(warehouse, "SELECT catalogue_id FROM processing.input")}


def test_harvest_default_goes_on_from_the_last_successful_harvest(
    warehouse: WarehouseResource,
) -> None:
    first = harvest(warehouse)
    assert first["new"] == FIXTURE_L2A and not first["window_explicit"]
    [(window_end,)] = query(
        warehouse,
        "SELECT window_end FROM ops.run_metrics WHERE run_id = %s AND source = %s",
        first["run_id"],
        SOURCE,
    )
    assert window_end == datetime(2026, 3, 15, 14, 49, 31, 7000, tzinfo=UTC)  # the last product
    second = harvest(warehouse)
    assert datetime.fromisoformat(second["window_from"]) == window_end
    assert (second["new"], second["already_known"]) == (0, 0)  # nothing published since


def test_harvest_start_and_end_bound_the_publication_window_and_leave_the_stored_one(
    warehouse: WarehouseResource,
) -> None:
    bounded = harvest(warehouse, start="2026-03-11", end="2026-03-14")
    assert (bounded["new"], bounded["window_explicit"]) == (4, True)
    assert inputs(warehouse) == MID_MARCH
    assert query(warehouse, "SELECT count(*) FROM ops.harvest_cursor") == [(0,)]
    # local dates: Paris midnight of 2026-03-11 is 23:00 UTC the day before; same products
    assert (
        harvest(warehouse, start="2026-03-11", end="2026-03-14", timezone="Europe/Paris")[
            "already_known"
        ]
        == 4
    )
    # the regular harvest still starts from its own window and finds the rest
    regular = harvest(warehouse)
    assert (regular["new"], regular["already_known"]) == (FIXTURE_L2A - 4, 4)
    assert len(inputs(warehouse)) == FIXTURE_L2A


def test_harvest_force_registers_done_items_again_and_skip_existing_false_overwrites(
    warehouse: WarehouseResource,
) -> None:
    harvest(warehouse)
    gone, renamed = sorted(MID_MARCH)[:2]
    query(warehouse, "DELETE FROM processing.input WHERE catalogue_id = %s RETURNING id", gone)
    query(
        warehouse,
        "UPDATE processing.input SET name = 'renamed' WHERE catalogue_id = %s RETURNING id",
        renamed,
    )
    window = {"start": "2026-03-01", "end": "2026-04-01"}
    # the catalog holds the deleted input as done: not registered again without force
    assert harvest(warehouse, **window)["new"] == 0
    assert gone not in inputs(warehouse)
    forced = harvest(warehouse, **window, force=True)
    assert (forced["new"], forced["overwritten"], forced["already_known"]) == (1, 0, 7)
    assert gone in inputs(warehouse)
    name = "SELECT name FROM processing.input WHERE catalogue_id = %s"
    assert query(warehouse, name, renamed) == [("renamed",)]
    overwritten = harvest(warehouse, **window, force=True, skip_existing=False)
    assert (overwritten["new"], overwritten["overwritten"]) == (0, FIXTURE_L2A)
    assert query(warehouse, name, renamed)[0][0].startswith("S2")
    assert query(
        warehouse,
        "SELECT items_written FROM ops.run_metrics WHERE run_id = %s AND job = %s",
        overwritten["run_id"],
        HARVEST_JOB,
    ) == [(FIXTURE_L2A,)]
