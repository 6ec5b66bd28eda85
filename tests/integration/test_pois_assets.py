"""The POI assets through `dagster.materialize` with explicit resources: both sources from their
fixtures (events over a local HTTP server that fails one page once), then a second delivery with
one event changed and one removed."""

from __future__ import annotations

from dagster import AssetKey, Definitions, materialize

from platform_assets.pois.assets import build_assets
from platform_assets.pois.checks import POI_CHECKS
from platform_assets.pois.definitions import defs
from platform_assets.pois.sources import events as events_source
from platform_assets.samples.pois.fixtures import bundled_location
from resources.geocoder import GeocoderResource
from resources.poi_sources import PoiSourcesResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource
from tests.fakes.events_server import running_events_server


def delivery(number: int) -> list[dict]:
    return list(events_source.extract_files(bundled_location("events", number)))


def run_all(warehouse: WarehouseResource, base_url: str):
    resources = {
        "warehouse": warehouse,
        "geocoder": GeocoderResource(),
        "dry_run": DryRunResource(),
        "poi_sources": PoiSourcesResource(
            events_url=base_url,
            facilities_file=str(bundled_location("facilities")),
            page_size=5,
            backoff_seconds=0,
        ),
    }
    return materialize([*build_assets(), *POI_CHECKS], resources=resources)


def materialisation(result, name: str) -> dict:
    """The metadata of an asset's materialisation in a run."""
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == AssetKey(["pois", name])
    ]
    return event.materialization.metadata


def check_results(result) -> dict[str, bool]:
    return {
        f"{e.asset_key.path[-1]}:{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def test_definitions_face() -> None:
    graph = Definitions.merge(
        defs,
        Definitions(
            resources={
                "warehouse": WarehouseResource(),
                "geocoder": GeocoderResource(),
                "dry_run": DryRunResource(),
                "poi_sources": PoiSourcesResource(),
            }
        ),
    ).resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {
        "pois/events_raw", "pois/events_normalised", "pois/facilities_raw",
        "pois/facilities_normalised", "pois/poi", "pois/address", "pois/activity",
        "pois/address_poi", "pois/registered_poi", "pois/poi_history",
    }  # fmt: skip
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name == "pois"
        assert node.kinds and "dagster/column_schema" in node.metadata


def test_two_deliveries_through_the_assets(warehouse: WarehouseResource) -> None:
    with running_events_server(delivery(1), page_size=5) as server:
        server.fail_once(page=2, status=500)
        first = run_all(warehouse, server.base_url)
        assert first.success
        assert (2, 500) in server.requests and server.requests.count((2, 200)) == 1
    normalised = materialisation(first, "events_normalised")
    assert normalised["quarantined"].value == 1
    checks = check_results(first)
    assert all(checks.values()), checks
    with warehouse.connect() as conn:
        [(oid, stage, error)] = conn.execute(
            "SELECT original_id, stage, error FROM pois.quarantine"
        ).fetchall()
        assert (oid, stage) == ("EV-1099", "source") and "location.lat" in error
        assert conn.execute("SELECT count(*) FROM pois.poi WHERE active").fetchone()[0] == 22

    with running_events_server(delivery(2), page_size=5) as server:
        second = run_all(warehouse, server.base_url)
    assert second.success
    poi = materialisation(second, "poi")
    assert (poi["updated"].value, poi["history_versions"].value, poi["deactivated"].value) == (
        1,
        1,
        1,
    )
    assert poi["inserted"].value == 0
    with warehouse.connect() as conn:
        assert conn.execute("SELECT original_id FROM pois.poi_history").fetchall() == [("EV-1003",)]
        inactive = conn.execute(
            "SELECT original_id FROM pois.registered_poi WHERE NOT active"
        ).fetchall()
        assert inactive == [("EV-1005",)]
        assert conn.execute("SELECT count(*) FROM pois.poi").fetchone()[0] == 22
    assert all(check_results(second).values())


def test_demo_hooks_on_the_default_fixture_locations(warehouse, tmp_path, monkeypatch) -> None:
    from platform_assets.demo import pois as demo

    monkeypatch.setenv("FISHNET_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("POI_EVENTS_URL", raising=False)
    monkeypatch.delenv("POI_FACILITIES_FILE", raising=False)
    resources = {
        "warehouse": warehouse,
        "geocoder": GeocoderResource(),
        "dry_run": DryRunResource(),
        "poi_sources": PoiSourcesResource(),
    }
    demo.prepare_demo(warehouse)
    assert materialize(build_assets(), resources=resources).success
    demo.second_delivery(warehouse)
    assert materialize(build_assets(), resources=resources).success
    text = "\n".join(demo.summary(warehouse))
    assert "events        13 active, 1 inactive, 1 updated since first seen" in text
    assert "facilities     8 active, 0 inactive" in text
    assert "history versions kept: 1" in text and "EV-1003" in text
    assert "events/EV-1005" in text and "quarantined records: 1" in text
