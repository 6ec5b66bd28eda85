"""Pure harvester logic: catalogue products and our products as inputs, and safe window chunks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_assets.processing.harvest import (
    ProductRow,
    catalogue_source_key,
    chunk_by_publication,
    eodata_path,
    input_from_catalogue,
    input_from_product,
    product_type_from_name,
)
from resources.catalogue import CatalogueResource
from resources.catalogue_client import FIXTURE_CATALOGUE_DIR, CatalogueProduct

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def product(n: int, published: datetime, name: str | None = None) -> CatalogueProduct:
    return CatalogueProduct(
        id=f"id-{n}",
        name=name or f"S2B_MSIL2A_20260310T105029_N0510_R051_T31TCJ_{n:04d}.SAFE",
        collection="SENTINEL-2",
        publication_date=published,
        content_start=T0,
        content_end=T0,
    )


def fixture_items() -> list[dict]:
    items = []
    for path in sorted(FIXTURE_CATALOGUE_DIR.glob("products-*.json")):
        items += json.loads(path.read_text())["value"]
    return items


@pytest.mark.parametrize(
    ("name", "collection", "expected"),
    [
        (
            "S2B_MSIL2A_20260310T105029_N0510_R051_T31TCJ_20260310T131512.SAFE",
            "SENTINEL-2",
            "S2MSI2A",
        ),
        (
            "S2C_MSIL1C_20260310T105029_N0510_R051_T31TCJ_20260310T113348.SAFE",
            "SENTINEL-2",
            "S2MSI1C",
        ),
        (
            "S1A_IW_GRDH_1SDV_20260310T055900_20260310T055925_058001_072A2B_1F2E.SAFE",
            "SENTINEL-1",
            "SENTINEL-1:IW",
        ),
        ("odd", "SENTINEL-3", "SENTINEL-3"),
    ],
)
def test_product_type_from_name(name: str, collection: str, expected: str) -> None:
    assert product_type_from_name(name, collection) == expected


def test_eodata_path_matches_the_catalogue_s3_path() -> None:
    items = fixture_items()
    assert items
    for item in items:
        assert eodata_path(CatalogueProduct.from_odata(item)) == item["S3Path"]


def test_input_from_catalogue() -> None:
    item = fixture_items()[1]
    row = input_from_catalogue(CatalogueProduct.from_odata(item))
    assert row.catalogue_id == item["Id"]
    assert row.name == item["Name"]
    assert row.product_type == "S2MSI2A"
    assert row.tile == "31TCJ"
    assert row.source == "catalogue" and row.source_product_id is None
    assert row.measurement_date == datetime(2026, 3, 10, 10, 50, 29, 24000, tzinfo=UTC)
    assert row.publication_date == datetime(2026, 3, 10, 14, 2, 11, 532000, tzinfo=UTC)


def test_input_from_product_keeps_lineage() -> None:
    row = input_from_product(
        ProductRow(
            7, "/products/ndvi/T31TCJ_20260310.tif", "NDVI", T0, T0 - timedelta(hours=1), "31TCJ"
        )
    )
    assert row.catalogue_id == "product:7"
    assert row.source == "product" and row.source_product_id == 7
    assert row.name == "T31TCJ_20260310.tif"
    assert (row.product_type, row.tile, row.publication_date) == ("NDVI", "31TCJ", T0)
    assert row.measurement_date == T0 - timedelta(hours=1)


def test_source_key_ignores_filter_order() -> None:
    assert catalogue_source_key("SENTINEL-2", ["L2A", "T31"]) == catalogue_source_key(
        "SENTINEL-2", ["T31", "L2A"]
    )
    assert catalogue_source_key("SENTINEL-2", ["L2A"]) != catalogue_source_key("SENTINEL-2", [])


@pytest.mark.parametrize(
    ("minutes", "size", "expected"),
    [
        # distinct dates: a full chunk holds back its last date, which may have more products
        ([1, 2, 3, 4, 5], 2, [([1], 1), ([2], 2), ([3], 3), ([4], 4), ([5], 5)]),
        # equal dates never straddle a stored window end
        ([1, 2, 2, 2, 3], 3, [([1], 1), ([2, 2, 2], 2), ([3], 3)]),
        ([1, 1, 1, 1], 2, [([1, 1, 1, 1], 1)]),
        ([1, 2, 3], 10, [([1, 2, 3], 3)]),
        ([], 3, []),
    ],
)
def test_chunks_advance_only_past_complete_dates(
    minutes: list[int], size: int, expected: list[tuple[list[int], int]]
) -> None:
    products = [product(i, T0 + timedelta(minutes=m)) for i, m in enumerate(minutes)]
    chunks = list(chunk_by_publication(products, size))
    got = [
        (
            [int((r.publication_date - T0).total_seconds() // 60) for r in chunk.rows],
            int((chunk.advance_to - T0).total_seconds() // 60),
        )
        for chunk in chunks
    ]
    assert got == expected


def test_duplicates_while_paging_are_dropped() -> None:
    a, b = product(1, T0), product(2, T0 + timedelta(minutes=1))
    (chunk,) = chunk_by_publication([a, b, a], 10)
    assert [r.catalogue_id for r in chunk.rows] == ["id-1", "id-2"]


@given(
    st.lists(st.integers(min_value=0, max_value=30), max_size=60).map(sorted),
    st.integers(min_value=1, max_value=8),
)
def test_every_product_once_and_window_safe(minutes: list[int], size: int) -> None:
    products = [product(i, T0 + timedelta(minutes=m)) for i, m in enumerate(minutes)]
    emitted: list[str] = []
    previous: datetime | None = None
    for chunk in chunk_by_publication(products, size):
        emitted += [r.catalogue_id for r in chunk.rows]
        assert chunk.advance_to is not None
        assert previous is None or chunk.advance_to > previous
        previous = chunk.advance_to
        # a crash now resumes with `PublicationDate gt advance_to`: nothing at or before it is
        # still to come
        assert all(p.id in emitted for p in products if p.publication_date <= chunk.advance_to)
    assert emitted == [p.id for p in products]


def test_catalogue_resource_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CATALOGUE_URL", raising=False)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    files = CatalogueResource()
    assert files.kind == "file" and files.first_window(now) is None
    monkeypatch.setenv("CATALOGUE_URL", "http://catalogue.invalid")
    odata = CatalogueResource(initial_lookback_hours=6, overlap_seconds=60)
    assert odata.kind == "odata"
    assert odata.first_window(now) == now - timedelta(hours=6)
    assert CatalogueResource(initial_published_after="2026-03-01T00:00:00").first_window(now) == (
        datetime(2026, 3, 1, tzinfo=UTC)
    )
    query = odata.query(T0)
    assert query.published_after == T0 - timedelta(seconds=60)
    assert (query.collection, query.name_contains, query.top) == ("SENTINEL-2", ["L2A"], 100)
