"""The sources: events over HTTP (paging, a 500 retried, a malformed record rejected with its
error) and from fixture pages; facilities from CSV and GeoJSON; the registry."""

from __future__ import annotations

import json

import pytest

from platform_assets.pois.sources import events as events_source
from platform_assets.pois.sources import facilities as facilities_source
from platform_assets.pois.sources import sources
from platform_assets.pois.sources.base import ExtractOptions, SourceError, SourceRecordError
from platform_assets.pois.transform import transform_source
from platform_assets.samples.pois.fixtures import bundled_location, synthetic_events
from resources.geocoder import GeocoderResource
from tests.fakes.events_server import running_events_server

FAST = ExtractOptions(page_size=4, max_retries=2, backoff_seconds=0)


def fixture_events() -> list[dict]:
    return list(events_source.extract_files(bundled_location("events")))


def test_registry_lists_both_sources() -> None:
    registry = sources()
    assert set(registry) == {"events", "facilities"}
    assert registry["events"].kind == "http" and registry["facilities"].kind == "file"


def test_http_extract_follows_pages_and_retries_a_500() -> None:
    records = fixture_events()
    with running_events_server(records, page_size=4) as server:
        server.fail_once(page=2, status=500)
        got = list(events_source.extract(server.base_url, FAST))
    assert [r["id"] for r in got] == [r["id"] for r in records]
    pages = [page for page, _ in server.requests]
    assert pages == [1, 2, 2, 3, 4]
    assert (2, 500) in server.requests


def test_http_extract_gives_up_after_retries_naming_the_page() -> None:
    with running_events_server(fixture_events(), page_size=4) as server:
        for _ in range(3):
            server.fail_once(page=1, status=503)
        with pytest.raises(SourceError, match="events page .*page=1"):
            list(events_source.extract(server.base_url, FAST))


def test_a_client_error_is_not_retried() -> None:
    with running_events_server(fixture_events(), page_size=4) as server:
        server.fail_once(page=1, status=404)
        with pytest.raises(SourceError, match="HTTP 404"):
            list(events_source.extract(server.base_url, FAST))
        assert len(server.requests) == 1


def test_malformed_record_is_rejected_with_its_error_and_the_rest_goes_on() -> None:
    raw = fixture_events()
    source = sources()["events"]
    outcome = transform_source(
        raw, source.transform, source.original_id, GeocoderResource().factory()
    )
    assert len(outcome.records) == len(raw) - 1
    [bad] = outcome.rejected
    assert bad.original_id == "EV-1099" and bad.stage == "source"
    assert "location.lat" in bad.error and "EV-1099" in bad.error
    assert "EV-1099" in outcome.seen_ids


def test_event_transform_maps_races_to_activities() -> None:
    record = synthetic_events(1)[0]
    poi = events_source.transform(record).poi
    assert poi.kind == "event" and len(poi.activities) == len(record["races"])
    with pytest.raises(SourceRecordError, match="races"):
        events_source.transform({**record, "races": []})


def test_numeric_ids_are_taken_as_text_and_other_text_fields_stay_strict() -> None:
    record = synthetic_events(1)[0]
    races = [{**race, "id": 7 + n} for n, race in enumerate(record["races"])]
    registered = events_source.transform({**record, "id": 1234, "races": races})
    assert registered.original_id == "1234"
    with pytest.raises(SourceRecordError, match="title"):
        events_source.transform({**record, "title": 1234})
    with pytest.raises(SourceRecordError, match="discipline"):
        events_source.transform({**record, "races": [{**races[0], "discipline": 10}]})


def test_facilities_from_csv_and_geojson_agree(tmp_path) -> None:
    rows = list(facilities_source.extract(str(bundled_location("facilities")), FAST))
    features = [
        {
            "type": "Feature",
            "properties": {k: v for k, v in row.items() if k not in ("lat", "lon")},
            "geometry": {"type": "Point", "coordinates": [float(row["lon"]), float(row["lat"])]},
        }
        for row in rows
    ]
    path = tmp_path / "facilities.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    from_geojson = list(facilities_source.extract(str(path), FAST))
    csv_pois = [facilities_source.transform(r) for r in rows]
    geo_pois = [facilities_source.transform(r) for r in from_geojson]
    assert [p.poi for p in csv_pois] == [p.poi for p in geo_pois]
    assert csv_pois[5].poi.addresses[0].address.insee_code == "2a004"  # normalised later


def test_process_pool_gives_the_same_outcome_as_one_process() -> None:
    raw = synthetic_events(300)
    raw[7] = {**raw[7], "location": {"lat": "x", "lng": 1}}
    source = sources()["events"]
    factory = GeocoderResource().factory()
    one = transform_source(raw, source.transform, source.original_id, factory, workers=1)
    pool = transform_source(
        raw, source.transform, source.original_id, factory, workers=2, chunk_size=100
    )
    assert [r.content_hash for r in one.records] == [r.content_hash for r in pool.records]
    assert [r.original_id for r in pool.rejected] == ["EV-0000007"]
    assert one.seen_ids == pool.seen_ids
