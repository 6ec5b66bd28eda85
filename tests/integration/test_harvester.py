"""The harvester asset against the file catalogue and the fake OData server, on real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, materialize

from platform_assets.processing.assets import processing_input
from platform_assets.processing.harvest import catalogue_source_key
from platform_assets.samples import processing as sample
from resources.catalogue import CatalogueResource
from resources.catalogue_client import FIXTURE_CATALOGUE_DIR
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource
from tests.fakes.odata_server import ProductFactory, running_odata_server

FIXTURE_L2A = 8  # of the 9 fixture products, one is L1C
SOURCE = catalogue_source_key("SENTINEL-2", ["L2A"])


@pytest.fixture(autouse=True)
def no_catalogue_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CATALOGUE_URL", raising=False)
    monkeypatch.delenv("CATALOGUE_TOKEN", raising=False)


def harvest(
    warehouse: WarehouseResource,
    catalogue: CatalogueResource | None = None,
    sources: list[str] | None = None,
    chunk_size: int = 500,
    raise_on_error: bool = True,
    instance: DagsterInstance | None = None,
) -> Any:
    """Materialize processing/input once; the result."""
    config: dict[str, Any] = {"chunk_size": chunk_size}
    if sources is not None:
        config["sources"] = sources
    return materialize(
        [processing_input],
        resources={
            "warehouse": warehouse,
            "catalogue": catalogue or CatalogueResource(),
            "dry_run": DryRunResource(),
        },
        run_config={"ops": {"processing__input": {"config": config}}},
        raise_on_error=raise_on_error,
        instance=instance,
    )


def counts(result: Any) -> dict[str, Any]:
    (materialization,) = result.asset_materializations_for_node("processing__input")
    return {k: v.value for k, v in materialization.metadata.items()}


def query(warehouse: WarehouseResource, sql: str, *params: Any) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.execute(sql, params).fetchall()


def window(warehouse: WarehouseResource, source: str = SOURCE) -> datetime | None:
    rows = query(
        warehouse, "SELECT published_after FROM ops.harvest_cursor WHERE source = %s", source
    )
    return rows[0][0] if rows else None


def test_harvest_fixture_catalogue_then_again(warehouse: WarehouseResource) -> None:
    first = counts(harvest(warehouse))
    assert (first["new"], first["already_known"], first["rejected"]) == (FIXTURE_L2A, 0, 0)
    assert first["catalogue"] == "file"
    assert first["dagster/row_count"] == FIXTURE_L2A

    row = query(
        warehouse,
        "SELECT product_type, path, tile, source, measurement_date, publication_date "
        "FROM processing.input WHERE catalogue_id = 'b7402c1a-96bc-5730-8d81-cbab7cb4b81b'",
    )
    assert row == [
        (
            "S2MSI2A",
            "/eodata/Sentinel-2/MSI/L2A/2026/03/10/"
            "S2B_MSIL2A_20260310T105029_N0510_R051_T31TCJ_20260310T131512.SAFE",
            "31TCJ",
            "catalogue",
            datetime(2026, 3, 10, 10, 50, 29, 24000, tzinfo=UTC),
            datetime(2026, 3, 10, 14, 2, 11, 532000, tzinfo=UTC),
        )
    ]
    # the window moved to the last publication date: the next harvest asks for newer only
    assert window(warehouse) == datetime(2026, 3, 15, 14, 49, 31, 7000, tzinfo=UTC)
    second = counts(harvest(warehouse))
    assert (second["new"], second["already_known"]) == (0, 0)

    # from the start again (window lost): idempotent, everything already known
    query(warehouse, "DELETE FROM ops.harvest_cursor RETURNING source")
    third = counts(harvest(warehouse))
    assert (third["new"], third["already_known"]) == (0, FIXTURE_L2A)
    assert query(warehouse, "SELECT count(*) FROM processing.input") == [(FIXTURE_L2A,)]


def _catalogue_dir(tmp_path: Path, *pages: list[dict]) -> Path:
    for i, items in enumerate(pages, start=1):
        page: dict[str, Any] = {"value": items}
        if i < len(pages):
            page["@odata.nextLink"] = f"products-{i + 1}.json"
        (tmp_path / f"products-{i}.json").write_text(json.dumps(page))
    return tmp_path


def test_rejected_items_are_counted_and_logged(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    factory = ProductFactory()
    good = factory.items(3)
    broken = [factory.item(PublicationDate=None), factory.item(ContentDate={"Start": "never"})]
    directory = _catalogue_dir(tmp_path, good[:2] + broken[:1], [good[2], broken[1]])
    instance = DagsterInstance.ephemeral()
    result = harvest(warehouse, CatalogueResource(fixtures_dir=str(directory)), instance=instance)
    meta = counts(result)
    assert (meta["new"], meta["already_known"], meta["rejected"]) == (3, 0, 2)
    assert {r["id"] for r in meta["rejected_sample"]} == {broken[0]["Id"], broken[1]["Id"]}
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    for item in broken:
        assert any(f"rejected catalogue item {item['Id']}" in message for message in logged)


def test_window_resumes_where_a_failed_harvest_stopped(warehouse: WarehouseResource) -> None:
    factory = ProductFactory()
    items = factory.items(5)  # increasing publication dates
    broken_page = {"value": "not a list"}
    with running_odata_server([items[:3], broken_page]) as server:
        result = harvest(
            warehouse, CatalogueResource(url=server.base_url), chunk_size=2, raise_on_error=False
        )
    assert not result.success
    # committed chunks stay, and the window ends at the last complete publication date
    stored = query(warehouse, "SELECT catalogue_id FROM processing.input ORDER BY id")
    assert [r[0] for r in stored] == [items[0]["Id"], items[1]["Id"]]
    assert window(warehouse) == datetime.fromisoformat(items[1]["PublicationDate"])

    with running_odata_server(products=items, page_size=2) as server:
        meta = counts(harvest(warehouse, CatalogueResource(url=server.base_url), chunk_size=2))
        filters = [r.params["$filter"] for r in server.requests]
    assert "PublicationDate gt 2026-03-01T01:00:00.000Z" in filters[0]
    assert (meta["new"], meta["already_known"]) == (3, 0)
    assert query(
        warehouse, "SELECT count(DISTINCT catalogue_id), count(*) FROM processing.input"
    ) == [(5, 5)]


def test_odata_catalogue_from_environment_with_token(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = ProductFactory()
    items = factory.items(7) + [
        factory.item(Name="S2B_MSIL1C_20260305T105029_N0510_R051_T31TCJ_x.SAFE")
    ]
    with running_odata_server(products=items, page_size=3, token="s3cret") as server:
        monkeypatch.setenv("CATALOGUE_URL", server.base_url)
        monkeypatch.setenv("CATALOGUE_TOKEN", "s3cret")
        catalogue = CatalogueResource(initial_published_after="2026-01-01T00:00:00Z")
        meta = counts(harvest(warehouse, catalogue))
        assert (meta["catalogue"], meta["new"], meta["rejected"]) == ("odata", 7, 0)
        assert all(r.headers.get("authorization") == "Bearer s3cret" for r in server.requests)
        assert "contains(Name,'L2A')" in server.requests[0].params["$filter"]
        assert "PublicationDate gt 2026-01-01T00:00:00.000Z" in server.requests[0].params["$filter"]

        server.products.extend(factory.items(2))  # published later
        meta = counts(harvest(warehouse, catalogue))
        assert (meta["new"], meta["already_known"]) == (2, 0)
    assert query(warehouse, "SELECT count(*) FROM processing.input") == [(9,)]


def test_products_become_inputs_of_the_next_routine(warehouse: WarehouseResource) -> None:
    sample.prepare_demo(warehouse)
    harvest(warehouse)
    with warehouse.connect() as conn:
        input_id, tile, measured = conn.execute(
            "SELECT id, tile, measurement_date FROM processing.input ORDER BY id LIMIT 1"
        ).fetchone()
        ndvi_task = _insert(conn, "processing_task", input_id=input_id, routine="s2_l2a_to_ndvi")
        composite_task = _insert(conn, "processing_task", routine="ndvi_to_composite")
        ndvi = _insert(
            conn, "product", task_id=ndvi_task, path="/products/ndvi/a.tif", product_type="NDVI"
        )
        # no routine takes composites: they are final products, not inputs
        _insert(
            conn,
            "product",
            task_id=composite_task,
            path="/products/composite/a.tif",
            product_type="NDVI_COMPOSITE",
        )
    meta = counts(harvest(warehouse, sources=["product"]))
    assert (meta["new"], meta["product_new"], meta["catalogue"]) == (1, 1, "not read")
    rows = query(
        warehouse,
        "SELECT catalogue_id, source, source_product_id, product_type, name, tile, measurement_date "
        "FROM processing.input WHERE source = 'product'",
    )
    assert rows == [(f"product:{ndvi}", "product", ndvi, "NDVI", "a.tif", tile, measured)]
    assert counts(harvest(warehouse, sources=["product"]))["new"] == 0


def _insert(conn: psycopg.Connection, table: str, **values: Any) -> int:
    columns = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = conn.execute(
        f"INSERT INTO processing.{table} ({columns}) VALUES ({marks}) RETURNING id",
        tuple(values.values()),
    ).fetchone()
    assert row is not None
    return row[0]


def test_unknown_source_is_refused(warehouse: WarehouseResource) -> None:
    result = harvest(warehouse, sources=["ftp"], raise_on_error=False)
    assert not result.success


def test_fixture_catalogue_is_the_default() -> None:
    with CatalogueResource().open() as client:
        assert getattr(client, "directory", None) == FIXTURE_CATALOGUE_DIR


def test_rejected_items_are_kept_and_replayed(warehouse: WarehouseResource, tmp_path: Path) -> None:
    """The window moves past a rejected item: it is kept (raw + reason) and tried again."""
    factory = ProductFactory()
    good = factory.items(2)
    broken = factory.item(PublicationDate=None)
    null_ids = [{**factory.item(), "Id": None} for _ in range(2)]  # present, but null
    directory = _catalogue_dir(tmp_path, [good[0], broken, *null_ids, good[1]])
    catalogue = CatalogueResource(fixtures_dir=str(directory))
    meta = counts(harvest(warehouse, catalogue))
    # two items without an Id are two rejections, never an input 'None' then "already known"
    assert (meta["new"], meta["already_known"], meta["rejected"]) == (2, 0, 3)
    assert query(
        warehouse, "SELECT count(*) FROM processing.input WHERE catalogue_id = 'None'"
    ) == [(0,)]
    kept = query(
        warehouse,
        "SELECT item_id, reason, attempts, raw FROM processing.rejected_catalogue_item "
        "WHERE resolved_at IS NULL ORDER BY id",
    )
    assert [(k[0], k[2]) for k in kept] == [(broken["Id"], 1), (None, 1), (None, 1)]
    assert "PublicationDate" in kept[0][1] and "Id is null" in kept[1][1]
    assert kept[0][3]["Name"] == broken["Name"]

    # an operator repairs the kept item; the next harvest registers it although the window
    # has moved past its (missing) publication date
    with warehouse.connect() as conn:
        conn.execute(
            "UPDATE processing.rejected_catalogue_item "
            "SET raw = jsonb_set(raw, '{PublicationDate}', to_jsonb(%s::text)) WHERE item_id = %s",
            (good[0]["PublicationDate"], broken["Id"]),
        )
        conn.commit()
    meta = counts(harvest(warehouse, catalogue))
    assert meta["new"] == 0  # nothing new in the catalogue window itself
    assert query(
        warehouse, "SELECT count(*) FROM processing.input WHERE catalogue_id = %s", broken["Id"]
    ) == [(1,)]
    left = query(
        warehouse,
        "SELECT item_id, attempts FROM processing.rejected_catalogue_item "
        "WHERE resolved_at IS NULL ORDER BY id",
    )
    # still rejected: tried again by the replay, and seen again (the file catalogue is read whole)
    assert left == [(None, 3), (None, 3)]
