"""Distances and H3 lookups used by the enrichment, vectorised over numpy arrays."""

from __future__ import annotations

import math
from collections.abc import Iterable

import h3
import numpy as np
import pandas as pd

#: Sphere radius of H3's `great_circle_distance` (the reference's distance): a different radius
#: (6,371.0 km) is off by 1.1e-6 relative, beyond the comparison tolerance.
EARTH_RADIUS_M = 6_371_007.180918475
METERS_PER_NAUTICAL_MILE = 1852.0

_GRID_DEGREES = 0.01  # coarse lat/lon grid used to skip H3 for positions far from every anchorage
_LON_CELLS = 36_000
_POLAR_LATITUDE = 80.0  # beyond, a cell's longitude span is wide: mark its whole grid rows


def haversine_m(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in metres on H3's sphere (NaN where an input is NaN)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlam = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


class AnchorageIndex:
    """The anchorage cells plus a coarse grid of where they lie, so that only positions near a
    port pay for an H3 lookup (the reference looks every position up, row by row)."""

    def __init__(self, cells: Iterable[str], resolution: int = 9) -> None:
        self.resolution = resolution
        self.cells = frozenset(str(cell) for cell in cells)
        for cell in self.cells:
            if h3.get_resolution(cell) != resolution:
                raise ValueError(f"anchorage cell {cell} is not at H3 resolution {resolution}")
        self._grid = np.unique(np.array(list(self._grid_keys()), dtype=np.int64))

    @classmethod
    def from_frame(cls, anchorages: pd.DataFrame, resolution: int = 9) -> AnchorageIndex:
        """From a frame with an `h3` column (the reference domain's anchorages asset)."""
        if "h3" not in anchorages.columns:
            raise ValueError("anchorages frame has no 'h3' column")
        return cls(anchorages["h3"].dropna().astype(str), resolution)

    def contains(self, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
        """Whether each position's H3 cell is an anchorage (False where a coordinate is NaN)."""
        latitude = np.asarray(latitude, dtype=float)
        longitude = np.asarray(longitude, dtype=float)
        result = np.zeros(len(latitude), dtype=bool)
        if not self.cells or len(latitude) == 0:
            return result
        finite = np.isfinite(latitude) & np.isfinite(longitude)
        keys = _grid_key(latitude, longitude)
        slot = np.searchsorted(self._grid, keys)
        near = finite & (slot < len(self._grid))
        near[near] = self._grid[slot[near]] == keys[near]
        resolution, cells = self.resolution, self.cells
        for index in np.flatnonzero(near):
            cell = h3.latlng_to_cell(float(latitude[index]), float(longitude[index]), resolution)
            result[index] = cell in cells
        return result

    def _grid_keys(self) -> Iterable[int]:
        for cell in self.cells:
            centre_lat, centre_lon = h3.cell_to_latlng(cell)
            points = [*h3.cell_to_boundary(cell), (centre_lat, centre_lon)]
            lats = [lat for lat, _ in points]
            lons = [centre_lon + ((lon - centre_lon + 180) % 360 - 180) for _, lon in points]
            lat_lo = math.floor(min(lats) / _GRID_DEGREES) - 1
            lat_hi = math.floor(max(lats) / _GRID_DEGREES) + 1
            if max(abs(lat) for lat in lats) > _POLAR_LATITUDE:
                lon_range = range(-_LON_CELLS // 2, _LON_CELLS // 2)
            else:
                lon_lo = math.floor(min(lons) / _GRID_DEGREES) - 1
                lon_hi = math.floor(max(lons) / _GRID_DEGREES) + 1
                lon_range = range(lon_lo, lon_hi + 1)
            for lat_index in range(lat_lo, lat_hi + 1):
                for lon_index in lon_range:
                    yield int(_pack(lat_index, lon_index))


def _pack(lat_index: int | np.ndarray, lon_index: int | np.ndarray) -> int | np.ndarray:
    wrapped = (lon_index + _LON_CELLS // 2) % _LON_CELLS
    return (lat_index + 10_000) * _LON_CELLS + wrapped


def _grid_key(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        lat_index = np.nan_to_num(np.floor(latitude / _GRID_DEGREES)).astype(np.int64)
        lon_index = np.nan_to_num(np.floor(longitude / _GRID_DEGREES)).astype(np.int64)
    return np.asarray(_pack(lat_index, lon_index), dtype=np.int64)
