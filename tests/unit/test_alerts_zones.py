"""Point-in-polygon over the STRtree grid against shapely's own predicate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_assets.alerts.zones import Zone, ZoneError, ZoneIndex, read_zones_file

from .test_alerts_helpers import zone_index


def _brute(index: ZoneIndex, lon: np.ndarray, lat: np.ndarray) -> set[tuple[int, int]]:
    points = shapely.points(lon, lat)
    return {
        (p, z)
        for z, polygon in enumerate(index.polygons)
        for p in np.flatnonzero(shapely.contains(polygon, points))
    }


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    cell=st.sampled_from([0.01, 0.05, 0.3, 2.0]),
    n=st.integers(0, 300),
)
def test_membership_equals_shapely_contains(seed: int, cell: float, n: int) -> None:
    rng = np.random.default_rng(seed)
    zones = []
    for i in range(12):
        cx, cy, r = rng.uniform(-6, 0), rng.uniform(44, 50), rng.uniform(0.05, 1.5)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radii = r * rng.uniform(0.3, 1, 9)
        ring = np.c_[cx + radii * np.cos(angles), cy + radii * np.sin(angles)]
        zones.append(Zone(f"z{i}", "regulatory", shapely.Polygon(ring).buffer(0)))
    index = ZoneIndex([z for z in zones if not z.geometry.is_empty], cell_degrees=cell)
    lon, lat = rng.uniform(-7, 1, n), rng.uniform(43, 51, n)
    position, zone = index.membership(lon, lat)
    assert set(zip(position.tolist(), zone.tolist(), strict=True)) == _brute(index, lon, lat)


def test_membership_restricted_to_zones_and_ignores_nan() -> None:
    index = zone_index()
    lon = np.array([-4.5, -4.5, np.nan, 10.0])
    lat = np.array([47.5, 52.0, 47.5, 10.0])
    position, zone = index.membership(lon, lat, index.indices(["Closed box 47.5N 4.5W"]))
    assert position.tolist() == [0]
    all_pairs = set(zip(*index.membership(lon, lat), strict=True))
    names = {(int(p), str(index.names[z])) for p, z in all_pairs}
    assert names == {(0, "Closed box 47.5N 4.5W"), (0, "EEZ FRA"), (1, "EEZ GBR")}


def test_depth_from_bathymetry() -> None:
    index = zone_index()
    depth = index.depth(np.array([-7.0, -4.5]), np.array([47.0, 47.5]))
    assert depth[0] == 800 and np.isnan(depth[1])


def test_unknown_zone_name_is_named() -> None:
    with pytest.raises(ZoneError, match="Atlantis"):
        zone_index().indices(["Atlantis"])


def test_zones_file_errors_name_the_feature(tmp_path: Path) -> None:
    path = tmp_path / "bad.geojson"
    feature = {"type": "Feature", "properties": {"name": "x", "layer": "moon"}, "geometry": None}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    with pytest.raises(ZoneError, match="bad.geojson.*'x'"):
        read_zones_file(path)


def test_duplicate_zone_names_refused() -> None:
    zone = Zone("a", "eez", shapely.box(0, 0, 1, 1))
    with pytest.raises(ZoneError, match="'a'"):
        ZoneIndex([zone, zone])
