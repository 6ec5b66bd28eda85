"""Sample zones and example specifications for the alerts demo, and synthetic zones for the
benchmark. No Dagster.

The bundled GeoJSON files (`platform_assets/samples/alerts/*.geojson`, written by
`python -m platform_assets.samples.alerts`, deterministic) are rough, made-up shapes around
Brittany and the Bay of Biscay, good enough to exercise the filters, not official boundaries:

- eez.geojson: "EEZ FRA", "EEZ GBR", "EEZ ESP" (boxes meeting at made-up lines);
- distance_to_shore.geojson: "0-3 nm FRA" and "3-12 nm FRA" bands along a simplified coast;
- fao_areas.geojson: "FAO 27.7.e", "FAO 27.7.h", "FAO 27.8.a", "FAO 27.8.b";
- regulatory.geojson: "Closed zone 47.5N 4.5W" (a 6 km-radius disc that the sample vessel
  AVEL VOR trawls across, see samples/positions.py) and "Box of Douarnenez";
- bathymetry.geojson: "Deeper than 200 m", "Deeper than 800 m" (west of the shelf edge).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import shapely

SAMPLE_DIR = Path(__file__).parent / "alerts"
CLOSED_ZONE = "Closed zone 47.5N 4.5W"
CLOSED_CENTRE = (47.5, -4.5)  # (lat, lon)

# a simplified coast of Brittany / Bay of Biscay, north to south (lon, lat)
_COAST = [
    (-1.6, 48.8),
    (-3.0, 48.85),
    (-4.2, 48.7),
    (-4.75, 48.4),
    (-4.35, 48.1),
    (-4.7, 47.95),
    (-4.2, 47.8),
    (-3.3, 47.7),
    (-2.5, 47.3),
    (-2.2, 46.9),
    (-1.6, 46.2),
    (-1.2, 45.5),
    (-1.25, 44.6),
    (-1.5, 43.5),
]


def _disc(lat: float, lon: float, radius_km: float, points: int = 48) -> shapely.Polygon:
    """An approximate circle (degrees scaled by latitude)."""
    dlat = radius_km / 111.2
    dlon = dlat / math.cos(math.radians(lat))
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return shapely.Polygon(np.c_[lon + dlon * np.cos(angles), lat + dlat * np.sin(angles)])


def _band(inner_nm: float, outer_nm: float) -> Any:
    """The sea between two distances to the simplified coast (land is east of the coast)."""
    coast = shapely.LineString(_COAST)
    land = shapely.Polygon([*_COAST, (2.0, 43.5), (2.0, 48.8)])
    outer = coast.buffer(outer_nm * 1.852 / 111.2).difference(land)
    inner = coast.buffer(inner_nm * 1.852 / 111.2) if inner_nm > 0 else shapely.Polygon()
    return outer.difference(inner)


def _feature(name: str, layer: str, geometry: Any, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"name": name, "layer": layer, **props},
        "geometry": json.loads(shapely.to_geojson(shapely.set_precision(geometry, 1e-5))),
    }


def sample_zone_files() -> dict[str, list[dict[str, Any]]]:
    """File name -> GeoJSON features of the bundled sample zones."""
    box = shapely.box
    return {
        "eez.geojson": [
            _feature("EEZ FRA", "eez", box(-8.0, 43.6, 2.0, 49.3)),
            _feature("EEZ GBR", "eez", box(-10.0, 49.3, 2.0, 52.0)),
            _feature("EEZ ESP", "eez", box(-10.0, 41.0, 2.0, 43.6)),
        ],
        "distance_to_shore.geojson": [
            _feature("0-3 nm FRA", "distance_to_shore", _band(0, 3)),
            _feature("3-12 nm FRA", "distance_to_shore", _band(3, 12)),
        ],
        "fao_areas.geojson": [
            _feature("FAO 27.7.e", "fao_area", box(-5.0, 48.0, -1.0, 50.0)),
            _feature("FAO 27.7.h", "fao_area", box(-9.0, 48.0, -5.0, 50.0)),
            _feature("FAO 27.8.a", "fao_area", box(-8.0, 46.0, -1.0, 48.0)),
            _feature("FAO 27.8.b", "fao_area", box(-4.0, 43.5, -1.0, 46.0)),
        ],
        "regulatory.geojson": [
            _feature(CLOSED_ZONE, "regulatory", _disc(*CLOSED_CENTRE, radius_km=6)),
            _feature("Box of Douarnenez", "regulatory", box(-4.55, 48.05, -4.25, 48.2)),
        ],
        "bathymetry.geojson": [
            _feature("Deeper than 200 m", "bathymetry", box(-10.0, 43.5, -5.5, 49.5), depth_m=200),
            _feature("Deeper than 800 m", "bathymetry", box(-10.0, 43.5, -7.0, 49.5), depth_m=800),
        ],
    }


def write_sample_zones(directory: Path = SAMPLE_DIR) -> list[Path]:
    """Write the sample zone files (committed; rerun after changing the shapes)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, features in sample_zone_files().items():
        path = directory / name
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=1))
        paths.append(path)
    return paths


def benchmark_zones(
    n: int = 500, seed: int = 16, bounds: tuple[float, float, float, float] = (-10, 43, 2, 52)
) -> list[Any]:
    """`n` irregular polygons (24 vertices, 5-80 km across) over `bounds` (lon/lat), as
    platform_assets.alerts.zones.Zone objects of mixed layers, for the benchmark."""
    from platform_assets.alerts.zones import Zone

    rng = np.random.default_rng(seed)
    layers = ("regulatory", "eez", "fao_area", "distance_to_shore")
    zones = []
    for i in range(n):
        lon = rng.uniform(bounds[0], bounds[2])
        lat = rng.uniform(bounds[1], bounds[3])
        radius = rng.uniform(0.05, 0.7)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 24))
        radii = radius * rng.uniform(0.5, 1.0, 24)
        ring = np.c_[
            lon + radii * np.cos(angles) / math.cos(math.radians(lat)), lat + radii * np.sin(angles)
        ]
        polygon = shapely.make_valid(shapely.Polygon(ring))
        zones.append(Zone(f"bench zone {i:03d}", layers[i % len(layers)], polygon, None, "bench"))
    return zones


DEMO_ACTIVE_SPECIFICATIONS = ("Fishing in the closed zone off Brittany",)


def seed_alerts_demo(conn: Any, directory: Path = SAMPLE_DIR) -> dict[str, int]:
    """Load the sample zones and make sure the example specifications (seeded by migration 0013)
    exist, with the demo's rule active. `conn`: an open psycopg connection; the caller commits."""
    from platform_assets.alerts import store
    from platform_assets.alerts.zones import read_zones_file

    zones = [z for path in sorted(directory.glob("*.geojson")) for z in read_zones_file(path)]
    loaded = store.load_zones(conn, zones)
    activated = conn.execute(
        "UPDATE alerts.position_alert_specifications SET is_active = true WHERE name = ANY(%s)",
        (list(DEMO_ACTIVE_SPECIFICATIONS),),
    ).rowcount
    return {"zones": loaded, "specifications_activated": activated}


if __name__ == "__main__":
    for written in write_sample_zones():
        print(written)
