"""The catalogue clients: OData over HTTP against a local stand-in, and the file-based default."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resources.catalogue_client import (
    FIXTURE_CATALOGUE_DIR,
    Catalogue,
    CatalogueError,
    CatalogueProduct,
    CatalogueQuery,
    FileCatalogueClient,
    ODataCatalogueClient,
    RejectedItem,
    build_filter,
    collection_from_name,
    matches,
    odata_datetime,
    parse_retry_after,
    tile_from_name,
)
from tests.fakes.odata_server import (
    PRODUCTS_PATH,
    FakeODataServer,
    ProductFactory,
    running_odata_server,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def fixture_items() -> list[dict[str, Any]]:
    """The raw items of the embedded fixture catalogue, all pages."""
    items: list[dict[str, Any]] = []
    for path in sorted(FIXTURE_CATALOGUE_DIR.glob("products-*.json")):
        items += json.loads(path.read_text())["value"]
    return items


class RecordingSleep:
    """Stands in for time.sleep: records the delays the client asked for, waits for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client_for(
    server: FakeODataServer, sleep: RecordingSleep | None = None, **kwargs: Any
) -> ODataCatalogueClient:
    options: dict[str, Any] = {"max_attempts": 4, "base_delay": 0.0, "timeout": 5.0}
    options.update(kwargs)
    return ODataCatalogueClient(server.base_url, sleep=sleep or RecordingSleep(), **options)


def products_of(results: list[CatalogueProduct | RejectedItem]) -> list[CatalogueProduct]:
    return [r for r in results if isinstance(r, CatalogueProduct)]


S2_L2A = CatalogueQuery(collection="SENTINEL-2", name_contains=["L2A"])


# --------------------------------------------------------------------------------------------
# Pure parts


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (CatalogueQuery(collection="SENTINEL-2"), "Collection/Name eq 'SENTINEL-2'"),
        (
            CatalogueQuery(
                collection="SENTINEL-2",
                name_contains=["L2A", "_T31TCJ_"],
                content_start=utc(2024, 1, 1),
                content_end=utc(2024, 1, 2),
                published_after=utc(2024, 1, 3, 4, 5, 6, 789000),
            ),
            "Collection/Name eq 'SENTINEL-2' and contains(Name,'L2A') and "
            "contains(Name,'_T31TCJ_') and ContentDate/Start ge 2024-01-01T00:00:00.000Z and "
            "ContentDate/Start lt 2024-01-02T00:00:00.000Z and "
            "PublicationDate gt 2024-01-03T04:05:06.789Z",
        ),
        (
            CatalogueQuery(collection="O'Brien", name_contains=["it's"]),
            "Collection/Name eq 'O''Brien' and contains(Name,'it''s')",
        ),
        (  # naive is UTC, other offsets converted
            CatalogueQuery(
                collection="S",
                content_start=datetime(2024, 1, 1, 12),
                published_after=datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            ),
            "Collection/Name eq 'S' and ContentDate/Start ge 2024-01-01T12:00:00.000Z and "
            "PublicationDate gt 2024-01-01T10:00:00.000Z",
        ),
    ],
)
def test_build_filter(query: CatalogueQuery, expected: str) -> None:
    assert build_filter(query) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (utc(2026, 3, 10, 14, 2, 11, 532000), "2026-03-10T14:02:11.532Z"),
        (utc(2026, 3, 10), "2026-03-10T00:00:00.000Z"),
        # sub-millisecond precision kept: truncating would shift a window boundary
        (utc(2026, 3, 10, 0, 0, 0, 123456), "2026-03-10T00:00:00.123456Z"),
    ],
)
def test_odata_datetime(value: datetime, expected: str) -> None:
    assert odata_datetime(value) == expected


@pytest.mark.parametrize(
    ("name", "tile", "collection"),
    [
        (
            "S2B_MSIL2A_20260310T105029_N0510_R051_T31TCJ_20260310T131512.SAFE",
            "31TCJ",
            "SENTINEL-2",
        ),
        (
            "S2C_MSIL1C_20260311T104031_N0510_R008_T31TDJ_20260311T150944.SAFE",
            "31TDJ",
            "SENTINEL-2",
        ),
        (
            "S1A_IW_GRDH_1SDV_20260310T055829_20260310T055854_058001_072A1B_1F2E.SAFE",
            None,
            "SENTINEL-1",
        ),
        (
            "S5P_OFFL_L2__NO2____20260310T104500_20260310T122630_43210_03_020600_20260312T031500.nc",
            None,
            "SENTINEL-5P",
        ),
        ("LC09_L2SP_198030_20260310_20260312_02_T1", None, None),
    ],
)
def test_tile_and_collection_from_name(name: str, tile: str | None, collection: str | None) -> None:
    assert tile_from_name(name) == tile
    assert collection_from_name(name) == collection


def test_product_parsed_from_a_copernicus_item() -> None:
    product = CatalogueProduct.from_odata(fixture_items()[1])

    assert product.name == "S2B_MSIL2A_20260310T105029_N0510_R051_T31TCJ_20260310T131512.SAFE"
    assert product.collection == "SENTINEL-2"
    assert product.tile == "31TCJ"
    assert product.publication_date == utc(2026, 3, 10, 14, 2, 11, 532000)
    assert product.content_start == utc(2026, 3, 10, 10, 50, 29, 24000)
    assert product.online is True
    assert product.size == 1104527391
    assert product.footprint is not None and "POLYGON" in product.footprint


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Id": None}, "missing Id"),
        ({"PublicationDate": "yesterday"}, "publication_date"),
        ({"ContentDate": {"Start": "2026-03-10T10:50:29Z"}}, "ContentDate has no Start/End"),
        ({"ContentLength": -5}, "size"),
        ({"Name": "LC09_L2SP_198030"}, "cannot tell the collection"),
    ],
)
def test_malformed_items_are_rejected_with_a_reason(change: dict[str, Any], reason: str) -> None:
    item = {**fixture_items()[1], **change}
    item = {key: value for key, value in item.items() if value is not None}
    with pytest.raises(ValueError, match=reason):
        CatalogueProduct.from_odata(item)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Wed, 11 Mar 2026 10:00:30 GMT", 30.0),
        ("soon", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = utc(2026, 3, 11, 10, 0, 0)
    assert parse_retry_after(header, now=now) == expected


def test_both_clients_are_catalogues() -> None:
    assert isinstance(FileCatalogueClient(), Catalogue)
    with ODataCatalogueClient("http://127.0.0.1:9") as client:
        assert isinstance(client, Catalogue)


# --------------------------------------------------------------------------------------------
# OData client against the stand-in


def test_follows_next_links_and_sends_filter_orderby_top() -> None:
    items = ProductFactory().items(7)
    with running_odata_server(products=items) as server, client_for(server) as client:
        query = CatalogueQuery(collection="SENTINEL-2", name_contains=["L2A"], top=3)
        results = list(client.iter_products(query))

    assert [p.id for p in products_of(results)] == [item["Id"] for item in items]
    first, *rest = server.requests
    assert first.path == PRODUCTS_PATH
    assert first.params == {
        "$filter": "Collection/Name eq 'SENTINEL-2' and contains(Name,'L2A')",
        "$orderby": "PublicationDate asc",
        "$top": "3",
    }
    assert [r.params.get("$skip") for r in rest] == ["3", "6"]


def test_server_side_filter_gives_the_query_window() -> None:
    items = fixture_items()
    window = CatalogueQuery(
        collection="SENTINEL-2",
        name_contains=["L2A", "_T31TCJ_"],
        content_start=utc(2026, 3, 11),
        content_end=utc(2026, 3, 15),
    )
    with running_odata_server(products=items, page_size=2) as server, client_for(server) as c:
        names = [p.name for p in products_of(list(c.iter_products(window)))]

    assert names == [
        "S2C_MSIL2A_20260311T104031_N0510_R008_T31TCJ_20260311T150944.SAFE",
        "S2C_MSIL2A_20260313T105031_N0510_R051_T31TCJ_20260313T134407.SAFE",
    ]


def test_empty_pages() -> None:
    factory = ProductFactory()
    a, b, c = factory.items(3)
    with running_odata_server([[a, b], [], [c]]) as server, client_for(server) as client:
        assert [p.id for p in products_of(list(client.iter_products(S2_L2A)))] == [
            a["Id"],
            b["Id"],
            c["Id"],
        ]
    with running_odata_server([[]]) as server, client_for(server) as client:
        assert list(client.iter_products(S2_L2A)) == []
        assert len(server.requests) == 1


def test_retries_a_503_then_succeeds() -> None:
    items = ProductFactory().items(2)
    sleep = RecordingSleep()
    with running_odata_server([items]) as server, client_for(server, sleep) as client:
        server.fail_next(1, 503)
        results = list(client.iter_products(S2_L2A))

    assert len(products_of(results)) == 2
    assert len(server.requests) == 2
    assert server.requests[0].params == server.requests[1].params  # same request again
    assert len(sleep.delays) == 1


def test_honours_retry_after_on_429() -> None:
    items = ProductFactory().items(1)
    sleep = RecordingSleep()
    with running_odata_server([items]) as server, client_for(server, sleep) as client:
        server.fail_next(2, 429, retry_after="7")
        results = list(client.iter_products(S2_L2A))

    assert len(products_of(results)) == 1
    assert sleep.delays == [7.0, 7.0]


def test_backoff_grows_and_is_capped() -> None:
    sleep = RecordingSleep()
    with running_odata_server([[]]) as server:
        client = client_for(server, sleep, max_attempts=6, base_delay=1.0, max_delay=5.0)
        server.fail_next(5, 503)
        with client:
            list(client.iter_products(S2_L2A))
        server.fail_next(1, 429, retry_after="3600")
        with client_for(server, sleep, base_delay=0.0, max_delay=5.0) as capped:
            list(capped.iter_products(S2_L2A))

    backoff, retry_after = sleep.delays[:5], sleep.delays[5]
    # equal jitter: between half and all of 1, 2, 4, then the 5s cap
    for delay, ceiling in zip(backoff, [1, 2, 4, 5, 5], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert retry_after == 5.0


def test_gives_up_with_a_clear_error_after_the_last_attempt() -> None:
    with running_odata_server([[]]) as server, client_for(server, max_attempts=3) as client:
        server.fail_next(3, 503, body="maintenance")
        with pytest.raises(CatalogueError, match=r"failed after 3 attempts.*503.*maintenance"):
            list(client.iter_products(S2_L2A))
        assert len(server.requests) == 3


def test_client_errors_are_not_retried() -> None:
    sleep = RecordingSleep()
    with running_odata_server([[]]) as server, client_for(server, sleep) as client:
        server.fail_next(1, 400, body="Invalid filter")
        with pytest.raises(CatalogueError, match="400") as raised:
            list(client.iter_products(S2_L2A))

    assert raised.value.status_code == 400
    assert len(server.requests) == 1
    assert sleep.delays == []


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleep = RecordingSleep()
    client = ODataCatalogueClient(
        f"http://127.0.0.1:{port}", max_attempts=2, base_delay=0.0, sleep=sleep
    )
    with client, pytest.raises(CatalogueError, match=rf"127.0.0.1:{port}.*2 attempts.*Connect"):
        list(client.iter_products(S2_L2A))
    assert len(sleep.delays) == 1


def test_malformed_item_is_rejected_and_the_rest_continues(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = ProductFactory()
    good1, bad, good2 = factory.item(), factory.item(PublicationDate=None), factory.item()
    with (
        running_odata_server([[good1, bad], [good2]]) as server,
        client_for(server) as client,
        caplog.at_level(logging.WARNING, logger="resources.catalogue_client"),
    ):
        results = list(client.iter_products(S2_L2A))

    assert [type(r).__name__ for r in results] == [
        "CatalogueProduct",
        "RejectedItem",
        "CatalogueProduct",
    ]
    rejected = results[1]
    assert isinstance(rejected, RejectedItem)
    assert rejected.raw == bad and rejected.item_id == bad["Id"]
    assert "PublicationDate" in rejected.reason
    assert bad["Id"] in caplog.text


def test_page_without_value_is_an_error() -> None:
    with (
        running_odata_server([{"error": "oops"}]) as server,
        client_for(server) as client,
        pytest.raises(CatalogueError, match="no 'value' list"),
    ):
        list(client.iter_products(S2_L2A))


def test_bearer_token() -> None:
    items = ProductFactory().items(1)
    with running_odata_server([items], token="s3cret") as server:
        with client_for(server, token="s3cret") as client:
            assert len(list(client.iter_products(S2_L2A))) == 1
        assert server.requests[0].headers["authorization"] == "Bearer s3cret"
        with client_for(server) as anonymous, pytest.raises(CatalogueError, match="401"):
            list(anonymous.iter_products(S2_L2A))


def test_refuses_a_next_link_to_another_origin() -> None:
    page = {"value": [], "@odata.nextLink": "http://elsewhere.example/odata/v1/Products?x=1"}
    with running_odata_server([page]) as server, client_for(server, token="t") as client:
        with pytest.raises(CatalogueError, match="another origin"):
            list(client.iter_products(S2_L2A))
        assert len(server.requests) == 1


def test_detects_a_next_link_loop() -> None:
    with running_odata_server([[]]) as server:
        loop = {"value": [], "@odata.nextLink": f"{server.base_url}{PRODUCTS_PATH}?$skiptoken=0"}
        server.pages = [loop]
        with client_for(server) as client, pytest.raises(CatalogueError, match="loops"):
            list(client.iter_products(S2_L2A))
        assert len(server.requests) == 2


# --------------------------------------------------------------------------------------------
# File catalogue (the embedded default) and its agreement with the server-side filter


def test_file_catalogue_serves_the_fixtures_in_publication_order() -> None:
    results = list(FileCatalogueClient().iter_products(S2_L2A))

    products = products_of(results)
    assert len(results) == len(products) == 8
    assert {p.tile for p in products} == {"31TCJ", "31TDJ"}
    dates = [p.publication_date for p in products]
    assert dates == sorted(dates)
    assert all("L2A" in p.name for p in products)


def test_file_catalogue_published_after_windows_harvest_everything_once() -> None:
    """Harvest as the sensor does: resume after the last publication date seen."""
    client = FileCatalogueClient()
    cursor: datetime | None = None
    harvested: list[str] = []
    batches = []
    for until_day in (11, 13, 16):
        # Only products published by `until_day` exist at that point in the harvest.
        batch = [
            p
            for p in products_of(
                list(client.iter_products(S2_L2A.model_copy(update={"published_after": cursor})))
            )
            if p.publication_date < utc(2026, 3, until_day)
        ]
        batches.append(len(batch))
        harvested += [p.id for p in batch]
        if batch:
            cursor = batch[-1].publication_date

    assert batches == [2, 2, 4]
    assert len(harvested) == len(set(harvested)) == 8


def test_file_catalogue_content_windows_partition_the_products() -> None:
    client = FileCatalogueClient()
    bounds = [
        utc(2026, 3, 1),
        utc(2026, 3, 11, 10, 40, 31, 25000),
        utc(2026, 3, 14),
        utc(2026, 4, 1),
    ]
    windows = [
        [
            p.name
            for p in products_of(
                list(
                    client.iter_products(
                        S2_L2A.model_copy(update={"content_start": start, "content_end": end})
                    )
                )
            )
        ]
        for start, end in zip(bounds, bounds[1:], strict=False)
    ]

    assert [len(w) for w in windows] == [2, 4, 2]  # the boundary product falls in one window
    assert len({name for w in windows for name in w}) == 8


def test_file_catalogue_rejects_malformed_items_and_bad_links(tmp_path: Path) -> None:
    factory = ProductFactory()
    good, bad = factory.item(), factory.item(ContentDate=None)
    (tmp_path / "products-1.json").write_text(
        json.dumps({"value": [good, bad], "@odata.nextLink": "products-2.json"})
    )
    (tmp_path / "products-2.json").write_text(json.dumps({"value": [], "@odata.nextLink": "../x"}))

    client = FileCatalogueClient(tmp_path)
    with pytest.raises(CatalogueError, match="leaves the catalogue directory"):
        list(client.iter_products(S2_L2A))

    (tmp_path / "products-2.json").write_text(json.dumps({"value": []}))
    results = list(client.iter_products(S2_L2A))
    assert [type(r).__name__ for r in results] == ["RejectedItem", "CatalogueProduct"]


@pytest.fixture(scope="module")
def fixture_server() -> Iterator[FakeODataServer]:
    with running_odata_server(products=fixture_items(), page_size=3) as server:
        yield server


_instants = st.datetimes(
    min_value=datetime(2026, 3, 9), max_value=datetime(2026, 3, 16), timezones=st.just(UTC)
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    collection=st.sampled_from(["SENTINEL-2", "SENTINEL-1"]),
    name_contains=st.lists(
        st.sampled_from(["L2A", "L1C", "_T31TCJ_", "T31TDJ", "S2C_"]), max_size=2
    ),
    content_start=st.none() | _instants,
    content_end=st.none() | _instants,
    published_after=st.none() | _instants,
    top=st.integers(1, 4),
)
def test_file_filter_agrees_with_the_rendered_odata_filter(
    fixture_server: FakeODataServer,
    collection: str,
    name_contains: list[str],
    content_start: datetime | None,
    content_end: datetime | None,
    published_after: datetime | None,
    top: int,
) -> None:
    """The embedded default must select what the real catalogue would for the same query."""
    query = CatalogueQuery(
        collection=collection,
        name_contains=name_contains,
        content_start=content_start,
        content_end=content_end,
        published_after=published_after,
        top=top,
    )
    with client_for(fixture_server) as client:
        remote = [p.id for p in products_of(list(client.iter_products(query)))]
    local = [p.id for p in products_of(list(FileCatalogueClient().iter_products(query)))]
    assert remote == local
    for product in products_of(list(FileCatalogueClient().iter_products(query))):
        assert matches(query, product)
