"""Zones (EEZs, distance-to-shore bands, FAO areas, regulatory areas, bathymetry) and the
vectorised point-in-polygon that position alerts run on a million positions at a time.

Point-in-polygon is done without building one shapely Point per position (that alone costs about
a second per million): positions are bucketed into grid cells, the cells are queried against an
STRtree of the zone polygons, cells lying wholly inside a zone accept all their positions (kept as
(cell, zone) pairs, never expanded per position unless asked: see `Membership`), cells the zone
does not touch at all (only its bounding box does) are dropped, and only positions in cells
crossing a zone boundary are tested with `shapely.contains_xy` on prepared polygons. PostGIS is
never needed. A point exactly on a boundary is outside (`contains`).
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


@dataclass(frozen=True)
class Membership:
    """Positions inside zones, kept compact: a position is inside zone z when its grid cell lies
    wholly inside z (`cell_zone` pairs) or when it was tested inside (`point_zone` pairs). The
    two never hold the same (position, zone)."""

    cell: np.ndarray
    """Grid cell code of each position (-1: NaN coordinates)."""
    whole_cell: np.ndarray
    whole_zone: np.ndarray
    point_position: np.ndarray
    point_zone: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Membership:
        """No position in any zone."""
        none = np.empty(0, np.int64)
        return cls(np.full(n, -1, np.int64), none, none, none, none)

    def count(self) -> int:
        """How many (position, zone) pairs there are."""
        has = self.cell[self.cell >= 0]
        per_cell = np.bincount(self.whole_cell, minlength=int(self.cell.max(initial=-1)) + 1)
        return int(per_cell[has].sum()) + len(self.point_position)

    def pairs(self, positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every (position index, zone index) pair, or those of some positions only."""
        cell = self.cell
        if positions is not None:
            cell = np.full(len(cell), -1, np.int64)
            cell[positions] = self.cell[positions]
        count = int(max(self.cell.max(initial=-1), self.whole_cell.max(initial=-1))) + 1
        position, zone = _expand(cell, self.whole_cell, self.whole_zone, count)
        point_position, point_zone = self.point_position, self.point_zone
        if positions is not None:
            chosen = np.zeros(len(cell), bool)
            chosen[positions] = True
            keep = chosen[point_position]
            point_position, point_zone = point_position[keep], point_zone[keep]
        return np.r_[position, point_position], np.r_[zone, point_zone]


def _factorize(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..k-1 of the values >= 0 (-1 stays -1) and the k distinct values."""
    import pandas as pd

    codes, uniques = pd.factorize(key)
    codes = codes.astype(np.int64)
    uniques = np.asarray(uniques, np.int64)
    if len(uniques) and (uniques < 0).any():
        # -1 (no cell) got a code of its own: map it back to -1 and drop it
        gone = int(np.flatnonzero(uniques < 0)[0])
        codes = np.where(codes == gone, -1, codes - (codes > gone))
        uniques = np.delete(uniques, gone)
    return codes, uniques


def _expand(
    cell: np.ndarray, pair_cell: np.ndarray, pair_zone: np.ndarray, cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """(position, zone) for every position whose cell appears in the (cell, zone) pairs."""
    order = np.argsort(pair_cell, kind="stable")
    pair_zone = pair_zone[order]
    per_cell = np.bincount(pair_cell, minlength=cells)
    first = np.cumsum(per_cell) - per_cell
    has = cell >= 0
    position = np.flatnonzero(has)
    position = position[per_cell[cell[position]] > 0]
    sizes = per_cell[cell[position]]
    rows = np.repeat(position, sizes)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return rows, pair_zone[first[cell[rows]] + within]


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
        return self.locate(longitude, latitude, zone_indices).pairs()

    def locate(
        self, longitude: np.ndarray, latitude: np.ndarray, zone_indices: np.ndarray | None = None
    ) -> Membership:
        """Which positions lie strictly inside which zones (of `zone_indices`, all when None),
        as a `Membership`: whole grid cells inside a zone, plus tested (position, zone) pairs."""
        x = np.asarray(longitude, dtype=float)
        y = np.asarray(latitude, dtype=float)
        n = len(x)
        none = Membership.empty(n)
        if n == 0 or len(self.zones) == 0:
            return none
        wanted = np.ones(len(self.zones), bool)
        if zone_indices is not None:
            wanted[:] = False
            wanted[np.asarray(zone_indices, dtype=np.int64)] = True
            if not wanted.any():
                return none
        valid = np.isfinite(x) & np.isfinite(y)
        res = self.cell_degrees
        key = np.full(n, -1, np.int64)
        key[valid] = np.floor((x[valid] + 180.0) / res).astype(np.int64) * _CELL_KEY + np.floor(
            (y[valid] + 90.0) / res
        ).astype(np.int64)
        cell, cells = _factorize(key)
        cx, cy = cells // _CELL_KEY, cells % _CELL_KEY
        boxes = shapely.box(
            cx * res - 180.0, cy * res - 90.0, (cx + 1) * res - 180.0, (cy + 1) * res - 90.0
        )
        pair_cell, pair_zone = self.tree.query(boxes)  # bounding boxes only
        keep = wanted[pair_zone] & (cells[pair_cell] >= 0)
        pair_cell, pair_zone = pair_cell[keep], pair_zone[keep]
        whole = shapely.contains_properly(self.polygons[pair_zone], boxes[pair_cell])
        partial = np.flatnonzero(~whole)
        # a cell crossed by a zone's bounding box but not by the zone holds no point of it
        partial = partial[
            shapely.intersects(self.polygons[pair_zone[partial]], boxes[pair_cell[partial]])
        ]
        position, zone = _expand(cell, pair_cell[partial], pair_zone[partial], len(cells))
        inside = shapely.contains_xy(self.polygons[zone], x[position], y[position])
        return Membership(cell, pair_cell[whole], pair_zone[whole], position[inside], zone[inside])

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
