"""Zones (EEZs, distance-to-shore bands, FAO areas, regulatory areas, bathymetry) and the
vectorised point-in-polygon that position alerts run on a million positions at a time.

Point-in-polygon is done without building one shapely Point per position (that alone costs about
a second per million): positions are bucketed into grid cells, the cells are queried against an
STRtree of the zone polygons, cells lying wholly inside a zone accept all their positions, and only
positions in cells crossing a zone boundary are tested with `shapely.contains_xy` on prepared
polygons. PostGIS is never needed. A point exactly on a boundary is outside (`contains`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

LAYERS = ("eez", "distance_to_shore", "fao_area", "regulatory", "bathymetry")
"""Known zone layers; a specification's zones are ANDed across layers, ORed within one."""

_CELL_KEY = 1 << 20  # grid cell key = x cell * _CELL_KEY + y cell (cells of >= 0.0005 degree)


class ZoneError(ValueError):
    """A zone that cannot be used (bad geometry, unknown layer, duplicate name)."""


@dataclass(frozen=True)
class Zone:
    """A named polygon (or multipolygon) in WGS84 longitude/latitude."""

    name: str
    layer: str
    geometry: BaseGeometry
    depth_m: float | None = None
    """For bathymetry zones: the sea is at least this deep inside."""
    source: str | None = None


def zone_from_feature(feature: dict[str, Any], source: str) -> Zone:
    """A GeoJSON feature with `name` and `layer` properties (and `depth_m` for bathymetry)."""
    props = feature.get("properties") or {}
    name, layer = props.get("name"), props.get("layer")
    where = f"{source}: feature {name!r}"
    if not name or layer not in LAYERS:
        raise ZoneError(f"{where}: needs a name and a layer among {LAYERS}, got layer {layer!r}")
    try:
        geometry = shapely.from_geojson(json.dumps(feature["geometry"]))
    except Exception as exc:  # shapely raises GEOSException / ValueError on bad input
        raise ZoneError(f"{where}: bad geometry: {exc}") from exc
    return checked_zone(
        Zone(name, layer, geometry, _optional_float(props.get("depth_m")), source), where
    )


def checked_zone(zone: Zone, where: str) -> Zone:
    """Reject empty or non-areal geometries; repair invalid ones (self-intersections)."""
    geometry = zone.geometry
    if geometry.is_empty or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise ZoneError(f"{where}: needs a non-empty Polygon or MultiPolygon")
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    return Zone(zone.name, zone.layer, geometry, zone.depth_m, zone.source)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def read_zones_file(path: Path) -> list[Zone]:
    """The zones of a GeoJSON FeatureCollection file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ZoneError(f"{path}: cannot read GeoJSON: {exc}") from exc
    if data.get("type") != "FeatureCollection":
        raise ZoneError(f"{path}: expected a FeatureCollection")
    return [zone_from_feature(f, path.name) for f in data.get("features", [])]


def unique_names(zones: Iterable[Zone]) -> list[Zone]:
    """The zones, refusing two with the same name (specifications refer to zones by name)."""
    seen: dict[str, Zone] = {}
    for zone in zones:
        if zone.name in seen:
            raise ZoneError(f"zone name {zone.name!r} appears twice ({zone.source})")
        seen[zone.name] = zone
    return list(seen.values())


class ZoneIndex:
    """The zones in an STRtree, with prepared polygons, queried with arrays of coordinates."""

    def __init__(self, zones: Sequence[Zone], cell_degrees: float = 0.05) -> None:
        self.zones = list(unique_names(zones))
        self.names = np.array([z.name for z in self.zones], dtype=object)
        self.layers = np.array([z.layer for z in self.zones], dtype=object)
        self.depths = np.array(
            [np.nan if z.depth_m is None else z.depth_m for z in self.zones], dtype=float
        )
        self.by_name = {z.name: i for i, z in enumerate(self.zones)}
        self.polygons = np.array([z.geometry for z in self.zones], dtype=object)
        shapely.prepare(self.polygons)
        self.tree = shapely.STRtree(self.polygons)
        self.cell_degrees = cell_degrees

    def __len__(self) -> int:
        return len(self.zones)

    def indices(self, names: Iterable[str]) -> np.ndarray:
        """Zone indices of names; an unknown name raises naming it."""
        missing = [n for n in names if n not in self.by_name]
        if missing:
            raise ZoneError(f"unknown zone name(s): {sorted(missing)}")
        return np.array([self.by_name[n] for n in names], dtype=np.int64)

    def membership(
        self, longitude: np.ndarray, latitude: np.ndarray, zone_indices: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (position index, zone index) for every position strictly inside a zone.

        Only the zones in `zone_indices` are considered (all when None). NaN coordinates are in
        no zone.
        """
        x = np.asarray(longitude, dtype=float)
        y = np.asarray(latitude, dtype=float)
        empty = (np.empty(0, np.int64), np.empty(0, np.int64))
        if len(x) == 0 or len(self.zones) == 0:
            return empty
        wanted = np.ones(len(self.zones), bool)
        if zone_indices is not None:
            wanted[:] = False
            wanted[np.asarray(zone_indices, dtype=np.int64)] = True
            if not wanted.any():
                return empty
        valid = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
        res = self.cell_degrees
        cx = np.floor((x[valid] + 180.0) / res).astype(np.int64)
        cy = np.floor((y[valid] + 90.0) / res).astype(np.int64)
        key = cx * _CELL_KEY + cy
        order = np.argsort(key, kind="stable")
        cells, starts, counts = np.unique(key[order], return_index=True, return_counts=True)
        ccx, ccy = cells // _CELL_KEY, cells % _CELL_KEY
        boxes = shapely.box(
            ccx * res - 180.0, ccy * res - 90.0, (ccx + 1) * res - 180.0, (ccy + 1) * res - 90.0
        )
        cell_of_pair, zone_of_pair = self.tree.query(boxes)
        keep = wanted[zone_of_pair]
        cell_of_pair, zone_of_pair = cell_of_pair[keep], zone_of_pair[keep]
        if len(cell_of_pair) == 0:
            return empty
        whole = shapely.contains_properly(self.polygons[zone_of_pair], boxes[cell_of_pair])
        # one row per (position, candidate zone): positions of each candidate cell, in order
        sizes = counts[cell_of_pair]
        pair_of_row = np.repeat(np.arange(len(cell_of_pair)), sizes)
        offset = np.arange(len(pair_of_row)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        position = valid[order[starts[cell_of_pair][pair_of_row] + offset]]
        zone = zone_of_pair[pair_of_row]
        inside = np.ones(len(position), bool)
        test = ~whole[pair_of_row]
        inside[test] = shapely.contains_xy(
            self.polygons[zone[test]], x[position[test]], y[position[test]]
        )
        return position[inside], zone[inside]

    def depth(self, longitude: np.ndarray, latitude: np.ndarray) -> np.ndarray:
        """Sea depth at each position from the bathymetry zones (deepest containing band), NaN
        where no bathymetry zone contains it."""
        out = np.full(len(longitude), np.nan)
        bathymetry = np.flatnonzero(self.layers == "bathymetry")
        if len(bathymetry) == 0:
            return out
        position, zone = self.membership(longitude, latitude, bathymetry)
        if len(position):
            np.fmax.at(out, position, self.depths[zone])
        return out
