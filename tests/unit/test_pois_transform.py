"""The generic transform: discovery of transform_* steps, per-item failures, normalisation, INSEE
codes, and both geocoders (the bundled commune polygons, a fake of the BAN API)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from platform_assets.pois.models import (
    Activity,
    Address,
    AddressPoi,
    Poi,
    RegisteredPoi,
    TransformContext,
    TransformError,
    content_hash,
    normalise_insee_code,
    normalise_name,
)
from platform_assets.pois.transform import (
    iter_models,
    prepare_methods,
    transform_methods,
    transform_record,
    transform_records,
)
from resources.geocoder import BanGeocoder, GeocoderError, GeocoderResource, Place
from tests.fakes.events_server import running_geocoder_server


def record(
    lat: float = 48.86, lon: float = 2.35, name: str = "  MARATHON  DE PARIS "
) -> RegisteredPoi:
    return RegisteredPoi(
        source="test",
        original_id="1",
        poi=Poi(
            kind="event",
            name=name,
            url="HTTPS://Example.ORG/Path",
            addresses=[AddressPoi(role="Venue", address=Address(latitude=lat, longitude=lon))],
            activities=[Activity(sport="Course à pied", distance_km=42.195)],
        ),
    )


def offline() -> TransformContext:
    return TransformContext(geocoder=GeocoderResource().client())


def test_every_transform_method_is_discovered_in_definition_order() -> None:
    names = [name for name, _ in transform_methods(Address)]
    assert names == [
        "transform_get_address",
        "transform_validate_insee_code",
        "transform_normalise_text",
    ]
    assert "transform_content_hash" in dict(transform_methods(RegisteredPoi))


def test_a_new_method_is_discovered_without_registration() -> None:
    class Tagged(BaseModel):
        value: str = "a"

        def transform_upper(self, context: TransformContext) -> None:
            self.value = self.value.upper()

    class Shouty(Tagged):
        def transform_exclaim(self, context: TransformContext) -> None:
            self.value += "!"

    model = Shouty()
    for _, step in transform_methods(Shouty):
        step(model, TransformContext())
    assert model.value == "A!"


def test_children_are_transformed_before_their_parents() -> None:
    kinds = [type(m).__name__ for m in iter_models(record())]
    assert kinds == ["Address", "AddressPoi", "Activity", "Poi", "RegisteredPoi"]


def test_a_record_is_normalised_geocoded_and_hashed() -> None:
    r = transform_record(record(), offline())
    assert r.errors == []
    address = r.poi.addresses[0].address
    assert (address.insee_code, address.city, address.postcode) == ("75056", "Paris", "75001")
    assert r.poi.name == "Marathon de Paris"
    assert r.poi.url == "https://example.org/Path"
    assert r.poi.addresses[0].role == "venue"
    assert r.poi.activities[0].sport == "running"
    assert r.content_hash == content_hash(r) and len(r.content_hash) == 64


def test_a_failing_step_marks_only_its_item() -> None:
    at_sea = record(lat=46.0, lon=-4.0)  # Atlantic: no commune
    good = record()
    out = transform_records([at_sea, good], offline())
    assert out[1].errors == []
    assert any(e.startswith("Address.transform_get_address: no commune") for e in out[0].errors)
    # the other steps still ran on the failed item
    assert out[0].poi.name == "Marathon de Paris"


def test_content_hash_ignores_the_hashes_and_follows_the_content() -> None:
    a, b = transform_record(record(), offline()), transform_record(record(), offline())
    assert a.content_hash == b.content_hash
    b.raw_hash = "x"
    assert content_hash(b) == a.content_hash
    b.poi.activities[0].distance_km = 21.1
    assert content_hash(b) != a.content_hash


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("75056", "75056"),
        ("2a004", "2A004"),
        ("2B033", "2B033"),
        ("1004", "01004"),
        (" 97411 ", "97411"),
    ],  # fmt: skip
)
def test_valid_insee_codes(raw: str, expected: str) -> None:
    assert normalise_insee_code(raw) == expected


@pytest.mark.parametrize("raw", ["20004", "00100", "2C004", "2A04", "750566", "96001", "", None])
def test_invalid_insee_codes(raw: str | None) -> None:
    with pytest.raises(TransformError):
        normalise_insee_code(raw)


@given(st.text(alphabet=string.digits + "AB", min_size=0, max_size=7))
def test_insee_validation_accepts_exactly_five_character_codes(code: str) -> None:
    try:
        out = normalise_insee_code(code)
    except TransformError:
        return
    assert len(out) == 5 and not out.startswith("20") and out[:2] != "00"


@given(st.text(max_size=40))
def test_name_normalisation_is_idempotent_and_clean(text: str) -> None:
    once = normalise_name(text)
    assert normalise_name(once) == once
    assert once == once.strip() and "  " not in once


def test_commune_geocoder_finds_corsican_communes() -> None:
    geocoder = GeocoderResource().client()
    places = geocoder.reverse_many([(41.919, 8.7386), (42.70, 9.451), (42.306, 9.15), (46.0, -4.0)])
    assert [p.insee_code if p else None for p in places] == ["2A004", "2B033", "2B096", None]


def test_commune_geocoder_reads_another_file_by_setting(tmp_path, monkeypatch) -> None:
    path = tmp_path / "one.geojson"
    path.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", '
        '"properties": {"INSEE_COM": "01004", "NOM": "Ambérieu-en-Bugey"}, "geometry": '
        '{"type": "Polygon", "coordinates": [[[5.3, 45.9], [5.4, 45.9], [5.4, 46.0], [5.3, 45.9]]]}}]}'
    )
    monkeypatch.setenv("GEOCODER_COMMUNES_FILE", str(path))
    place = GeocoderResource().client().reverse_many([(45.92, 5.38)])[0]
    assert place == Place(insee_code="01004", city="Ambérieu-en-Bugey", label="Ambérieu-en-Bugey")


def _square(code: str, x0: float, y0: float, size: float) -> dict:
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {
        "type": "Feature",
        "properties": {"code": code, "nom": code},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


@given(
    st.lists(st.tuples(st.floats(-0.5, 2.5), st.floats(-0.5, 2.5)), min_size=1, max_size=60).map(
        lambda pts: [(round(lat, 3), round(lon, 3)) for lat, lon in pts]
    )
)
def test_commune_lookup_matches_a_point_by_point_search_in_file_order(points) -> None:
    """Overlapping and adjacent communes, points inside, outside and on borders: the batch query
    gives what a plain search of the polygons in file order gives (the first one wins)."""
    import json
    import tempfile
    from pathlib import Path

    import shapely

    from resources.geocoder_client import CommuneGeocoder

    features = [_square("01001", 0, 0, 1), _square("01002", 0.5, 0.5, 1), _square("01003", 1, 0, 1)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "communes.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        found = CommuneGeocoder(path).reverse_many(points)
    shapes = [shapely.geometry.shape(f["geometry"]) for f in features]
    for (lat, lon), place in zip(points, found, strict=True):
        point = shapely.Point(lon, lat)
        expected = next(
            (f for f, s in zip(features, shapes, strict=True) if s.intersects(point)), None
        )
        assert (place.insee_code if place else None) == (
            expected["properties"]["code"] if expected else None
        )


def _paris_or_nothing(lat: float, lon: float) -> dict[str, str] | None:
    if 48.8 < lat < 48.9:
        return {"citycode": "75056", "city": "Paris", "postcode": "75004",
                "street": "Rue de Rivoli", "label": "Rue de Rivoli 75004 Paris"}  # fmt: skip
    return None


def test_ban_geocoder_batches_retries_and_caches() -> None:
    with running_geocoder_server(_paris_or_nothing) as server:
        server.fail_next.append(503)
        geocoder = BanGeocoder(server.base_url, batch_size=2, backoff_seconds=0)
        points = [(48.85, 2.35), (48.86, 2.36), (45.0, 1.0), (48.85, 2.35)]
        places = geocoder.reverse_many(points)
        assert [p.insee_code if p else None for p in places] == ["75056", "75056", None, "75056"]
        assert places[0].street == "Rue de Rivoli"
        assert server.batches == [2, 1]  # 3 distinct points by 2; the 503 was retried
        geocoder.reverse_many(points)
        assert server.batches == [2, 1]  # answered from the cache


def test_ban_geocoder_gives_up_naming_the_endpoint() -> None:
    with running_geocoder_server(_paris_or_nothing) as server:
        server.fail_next.extend([500, 500, 500])
        geocoder = BanGeocoder(server.base_url, max_retries=2, backoff_seconds=0)
        with pytest.raises(GeocoderError, match="reverse/csv"):
            geocoder.reverse_many([(48.85, 2.35)])


def test_the_resource_chooses_the_api_when_a_url_is_set() -> None:
    with running_geocoder_server(_paris_or_nothing) as server:
        resource = GeocoderResource(url=server.base_url)
        assert resource.kind() == "ban-api"
        r = transform_record(record(), TransformContext(geocoder=resource.client()))
        assert r.poi.addresses[0].address.street == "Rue de Rivoli"


def test_batch_hooks_run_once_per_class_with_every_instance_before_the_steps() -> None:
    seen: list[tuple[str, int]] = []

    class Counted(BaseModel):
        value: int = 0

        @classmethod
        def prepare_count(cls, instances: list[Counted], context: TransformContext) -> None:
            seen.append(("prepare", len(instances)))

        def transform_mark(self, context: TransformContext) -> None:
            seen.append(("step", self.value))

    class Holder(RegisteredPoi):
        extra: list[Counted] = []

    records = [
        Holder.model_validate({**record().model_dump(), "extra": [{"value": i}, {"value": -i}]})
        for i in range(1, 4)
    ]
    transform_records(records, offline())
    assert seen[0] == ("prepare", 6) and len(seen) == 7
    assert [name for name, _ in prepare_methods(Address)] == ["prepare_get_address"]


def test_batch_geocoding_asks_the_geocoder_once_for_distinct_points() -> None:
    calls: list[int] = []

    class Counting:
        def reverse_many(self, points):
            calls.append(len(points))
            return GeocoderResource().client().reverse_many(points)

    out = transform_records([record(), record(), record(lat=48.87)], TransformContext(Counting()))
    assert calls == [2] and all(not r.errors for r in out)
