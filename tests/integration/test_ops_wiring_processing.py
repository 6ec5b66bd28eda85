"""The harvester wired to the operations: catalog items, run metrics per source, dry run."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import materialize

from platform_assets.ops.dry_run import DRY_RUN_TAG
from platform_assets.processing.assets import HARVEST_JOB, processing_input
from platform_assets.processing.harvest import catalogue_source_key
from resources.catalogue import CatalogueResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource

FIXTURE_L2A = 8  # of the 9 fixture products, one is L1C
SOURCE = catalogue_source_key("SENTINEL-2", ["L2A"])


@pytest.fixture(autouse=True)
def no_catalogue_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CATALOGUE_URL", raising=False)
    monkeypatch.delenv("CATALOGUE_TOKEN", raising=False)


def harvest(warehouse: WarehouseResource, tags: dict[str, str] | None = None) -> Any:
    return materialize(
        [processing_input],
        resources={
            "warehouse": warehouse,
            "catalogue": CatalogueResource(),
            "dry_run": DryRunResource(),
        },
        tags=tags,
    )


def metadata(result: Any) -> dict[str, Any]:
    (materialization,) = result.asset_materializations_for_node("processing__input")
    return {k: v.value for k, v in materialization.metadata.items()}


def meta_window(result: Any) -> str:
    return metadata(result)["window_to"]


def query(warehouse: WarehouseResource, sql: str, *params: Any) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.execute(sql, params).fetchall()


def test_harvested_inputs_are_catalog_items_and_each_source_has_its_metrics(
    warehouse: WarehouseResource,
) -> None:
    first = harvest(warehouse)
    items = query(
        warehouse,
        "SELECT c.repository, c.source, c.collection_date = i.publication_date::date, "
        "c.status, c.rows_written, c.run_id FROM ops.catalog c "
        "JOIN processing.input i ON i.catalogue_id = c.identifier ORDER BY c.identifier",
    )
    assert items == [("processing", SOURCE, True, "done", 1, first.run_id)] * FIXTURE_L2A
    assert query(warehouse, "SELECT count(*) FROM ops.catalog") == [(FIXTURE_L2A,)]
    metrics = query(
        warehouse,
        "SELECT job, source, status, items_read, items_written, rows_written, "
        "details ->> 'window_to' FROM ops.run_metrics ORDER BY source",
    )
    assert metrics == [
        (HARVEST_JOB, SOURCE, "success", FIXTURE_L2A, FIXTURE_L2A, FIXTURE_L2A, meta_window(first)),
        (HARVEST_JOB, "product", "success", 0, 0, 0, None),
    ]
    meta = metadata(first)
    assert meta[f"run/{SOURCE}/rows_written"] == FIXTURE_L2A
    assert meta["written/processing.input"] == FIXTURE_L2A

    # from the start again: every item is seen again, none stored, the first records stand
    query(warehouse, "DELETE FROM ops.harvest_cursor RETURNING source")
    again = harvest(warehouse)
    assert query(
        warehouse, "SELECT DISTINCT rows_written, run_id, last_seen_run_id FROM ops.catalog"
    ) == [(1, first.run_id, again.run_id)]
    assert query(
        warehouse,
        "SELECT items_read, items_written FROM ops.run_metrics WHERE run_id = %s AND source = %s",
        again.run_id,
        SOURCE,
    ) == [(FIXTURE_L2A, 0)]


def test_a_dry_run_harvests_and_keeps_nothing(warehouse: WarehouseResource) -> None:
    tables = ("processing.input", "ops.harvest_cursor", "ops.catalog", "ops.run_metrics")

    def counts() -> list[int]:
        return [query(warehouse, f"SELECT count(*) FROM {t}")[0][0] for t in tables]

    dry = harvest(warehouse, tags={DRY_RUN_TAG: "true"})
    assert counts() == [0, 0, 0, 0]
    meta = metadata(dry)
    assert (meta["dry_run"], meta["new"]) == (True, FIXTURE_L2A)
    assert meta["would_write/processing.input"] == FIXTURE_L2A
    sample = meta["would_write_sample/processing.input"]
    assert len(sample) == 5 and all(row["source"] == "catalogue" for row in sample)

    # the window did not move: a real harvest then finds the same products
    real = metadata(harvest(warehouse))
    assert (real["new"], real["dry_run"]) == (FIXTURE_L2A, False)
    assert counts() == [FIXTURE_L2A, 1, FIXTURE_L2A, 2]
