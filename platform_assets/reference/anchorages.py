"""Anchorages: the H3 cells where a vessel counts as "at port".

Two sources, merged: cells around each active port (a k-ring, so a harbour's basins and quays are
covered even when the port's point is off-centre), and cells where vessels are repeatedly seen
stopped (moorings and small harbours missing from the port list). Each cell names its nearest
port. Pure functions over pandas; positions enrichment looks cells up by `h3`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import h3
import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

ANCHORAGE_COLUMNS: tuple[str, ...] = ("h3", "port_locode", "distance_m", "source")
SOURCE_PORT = "port"
SOURCE_POSITIONS = "positions"

#: Mean Earth radius (IUGG), the one h3 uses for its great-circle distances.
EARTH_RADIUS_M = 6_371_008.8

_POSITION_COLUMNS = ("vessel_id", "latitude", "longitude", "speed", "datetime_utc")
_PORT_COLUMNS = ("locode", "latitude", "longitude")
_CHUNK = 4096  # rows of the cells x ports distance matrix computed at once


def anchorages_from_ports(
    ports: pd.DataFrame, resolution: int = 9, ring_k: int = 2
) -> pd.DataFrame:
    """Each active port's cell and its k-ring; a cell near two ports goes to the nearer one.

    `distance_m` is from the cell centre to the port. Ports without coordinates are skipped.
    """
    _check_resolution(resolution)
    if ring_k < 0:
        raise ValueError(f"ring_k must be >= 0, got {ring_k}")
    active = _active_ports(ports)
    cells: list[str] = []
    locodes: list[str] = []
    port_lat: list[float] = []
    port_lon: list[float] = []
    for locode, lat, lon in active[["locode", "latitude", "longitude"]].itertuples(index=False):
        centre = h3.latlng_to_cell(lat, lon, resolution)
        for cell in h3.grid_disk(centre, ring_k):
            cells.append(cell)
            locodes.append(locode)
            port_lat.append(lat)
            port_lon.append(lon)
    if not cells:
        return empty_anchorages()
    cell_lat, cell_lon = _cell_centres(cells)
    frame = pd.DataFrame(
        {
            "h3": cells,
            "port_locode": locodes,
            "distance_m": haversine_m(
                cell_lat, cell_lon, np.asarray(port_lat), np.asarray(port_lon)
            ),
        }
    )
    # Nearest port first, then the locode so that equal distances resolve the same way each run.
    frame = frame.sort_values(["h3", "distance_m", "port_locode"], kind="stable")
    frame = frame.drop_duplicates("h3", keep="first")
    frame["source"] = SOURCE_PORT
    return _typed(frame)


def anchorages_from_stationary_positions(
    positions: pd.DataFrame,
    ports: pd.DataFrame,
    min_stops: int = 3,
    max_speed_knots: float = 0.5,
    resolution: int = 9,
    max_port_distance_m: float | None = None,
) -> pd.DataFrame:
    """Cells with at least `min_stops` distinct (vessel, UTC day) stationary observations.

    A position is stationary when its speed (knots) is at most `max_speed_knots`; positions
    without speed are ignored. Each cell gets its nearest active port and the distance from the
    cell centre; with `max_port_distance_m`, cells farther than that from any port are dropped
    (drifting at sea is not an anchorage). Without ports, locode and distance are empty.
    """
    _check_resolution(resolution)
    if min_stops < 1:
        raise ValueError(f"min_stops must be >= 1, got {min_stops}")
    _require(positions, _POSITION_COLUMNS, "positions")
    stationary = positions.loc[
        positions["vessel_id"].notna()
        & positions["datetime_utc"].notna()
        & positions["speed"].notna()
        & (positions["speed"] <= max_speed_knots)
        & positions["latitude"].between(-90.0, 90.0)
        & positions["longitude"].between(-180.0, 180.0),
        ["vessel_id", "latitude", "longitude", "datetime_utc"],
    ]
    if stationary.empty:
        return empty_anchorages()
    days = pd.to_datetime(stationary["datetime_utc"], utc=True).dt.floor("D")
    stops = stationary.assign(day=days).drop(columns="datetime_utc").drop_duplicates()
    # h3 has no vectorised call: index each distinct coordinate once.
    coordinates = stops[["latitude", "longitude"]].drop_duplicates()
    coordinates = coordinates.assign(
        h3=[
            h3.latlng_to_cell(lat, lon, resolution)
            for lat, lon in coordinates.itertuples(index=False)
        ]
    )
    stops = stops.merge(coordinates, on=["latitude", "longitude"], how="left")
    counts = stops[["h3", "vessel_id", "day"]].drop_duplicates().groupby("h3").size()
    cells = sorted(counts[counts >= min_stops].index)
    logger.info(
        "%d stationary positions in %d cells, %d with at least %d stops",
        len(stationary),
        len(counts),
        len(cells),
        min_stops,
    )
    if not cells:
        return empty_anchorages()
    cell_lat, cell_lon = _cell_centres(cells)
    locodes, distances = nearest_ports(cell_lat, cell_lon, ports)
    frame = pd.DataFrame(
        {"h3": cells, "port_locode": locodes, "distance_m": distances, "source": SOURCE_POSITIONS}
    )
    if max_port_distance_m is not None:
        frame = frame[frame["distance_m"] <= max_port_distance_m]
    return _typed(frame)


def merge_anchorages(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: a port-derived row wins over a positions-derived one, then the nearer."""
    frames = [f for f in (a, b) if not f.empty]
    if not frames:
        return empty_anchorages()
    both = pd.concat([f[list(ANCHORAGE_COLUMNS)] for f in frames], ignore_index=True)
    both["_rank"] = (both["source"] != SOURCE_PORT).astype(int)
    both = both.sort_values(["h3", "_rank", "distance_m", "port_locode"], kind="stable")
    return _typed(both.drop_duplicates("h3", keep="first"))


def empty_anchorages() -> pd.DataFrame:
    """An anchorages frame with no rows and the usual columns and dtypes."""
    return _typed(pd.DataFrame({c: [] for c in ANCHORAGE_COLUMNS}))


def nearest_ports(
    latitudes: np.ndarray, longitudes: np.ndarray, ports: pd.DataFrame
) -> tuple[list[str | None], np.ndarray]:
    """For each point, the nearest active port's locode and the great-circle distance in metres."""
    active = _active_ports(ports)
    n = len(latitudes)
    if active.empty:
        return [None] * n, np.full(n, np.nan)
    port_lat = active["latitude"].to_numpy(dtype=float)
    port_lon = active["longitude"].to_numpy(dtype=float)
    port_codes = active["locode"].to_numpy(dtype=object)
    best = np.empty(n, dtype=np.intp)
    distance = np.empty(n, dtype=float)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        matrix = haversine_m(
            np.asarray(latitudes[start:stop])[:, None],
            np.asarray(longitudes[start:stop])[:, None],
            port_lat[None, :],
            port_lon[None, :],
        )
        best[start:stop] = matrix.argmin(axis=1)
        distance[start:stop] = matrix[np.arange(stop - start), best[start:stop]]
    return list(port_codes[best]), distance


def haversine_m(
    lat1: np.ndarray | float,
    lon1: np.ndarray | float,
    lat2: np.ndarray | float,
    lon2: np.ndarray | float,
) -> np.ndarray:
    """Great-circle distance in metres between points in degrees (numpy broadcasting)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _active_ports(ports: pd.DataFrame) -> pd.DataFrame:
    _require(ports, _PORT_COLUMNS, "ports")
    keep = ports["latitude"].notna() & ports["longitude"].notna() & ports["locode"].notna()
    if "is_active" in ports.columns:
        keep &= ports["is_active"].fillna(False).astype(bool)
    return ports.loc[keep]


def _cell_centres(cells: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    centres = np.array([h3.cell_to_latlng(cell) for cell in cells], dtype=float)
    return centres[:, 0], centres[:, 1]


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "h3": pd.Series(frame["h3"].to_list(), dtype=object),
            "port_locode": pd.Series(frame["port_locode"].to_list(), dtype=object),
            "distance_m": pd.Series(frame["distance_m"].to_list(), dtype="float64"),
            "source": pd.Series(frame["source"].to_list(), dtype=object),
        }
    )
    return out.sort_values("h3", kind="stable").reset_index(drop=True)


def _check_resolution(resolution: int) -> None:
    if not 0 <= resolution <= 15:
        raise ValueError(f"resolution must be within 0..15, got {resolution}")


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing columns: {', '.join(missing)}")
