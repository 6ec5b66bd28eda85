"""Anchorages: port k-rings, stationary-position cells, and their merge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_assets.reference.anchorages import (
    ANCHORAGE_COLUMNS,
    anchorages_from_ports,
    anchorages_from_stationary_positions,
    empty_anchorages,
    haversine_m,
    merge_anchorages,
)
from platform_assets.reference.readers import default_data_dir, read_ports

LORIENT = (47.7347, -3.3614)
CONCARNEAU = (47.8720, -3.9140)
DAY = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)


def _ports(*rows: tuple[str, float, float, bool]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["locode", "latitude", "longitude", "is_active"])


def _positions(*rows: tuple[int, float, float, float | None, datetime]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["vessel_id", "latitude", "longitude", "speed", "datetime_utc"]
    )


def _assert_anchorage_frame(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(ANCHORAGE_COLUMNS)
    assert frame["h3"].is_unique
    assert str(frame["distance_m"].dtype) == "float64"
    assert frame["h3"].tolist() == sorted(frame["h3"])


# --- from ports -------------------------------------------------------------------------------


def test_an_isolated_port_gets_its_cell_and_k_ring() -> None:
    frame = anchorages_from_ports(_ports(("FRLRT", *LORIENT, True)), resolution=9, ring_k=2)
    _assert_anchorage_frame(frame)
    centre = h3.latlng_to_cell(*LORIENT, 9)
    assert set(frame["h3"]) == set(h3.grid_disk(centre, 2))
    assert len(frame) == 19
    assert set(frame["port_locode"]) == {"FRLRT"}
    assert set(frame["source"]) == {"port"}
    own = frame.set_index("h3").loc[centre, "distance_m"]
    assert own < h3.average_hexagon_edge_length(9, "m")
    assert own == frame["distance_m"].min()


@pytest.mark.parametrize(("resolution", "ring_k", "cells"), [(9, 0, 1), (9, 1, 7), (8, 3, 37)])
def test_ring_size_follows_k(resolution: int, ring_k: int, cells: int) -> None:
    frame = anchorages_from_ports(_ports(("FRLRT", *LORIENT, True)), resolution, ring_k)
    assert len(frame) == cells
    assert all(h3.get_resolution(c) == resolution for c in frame["h3"])


def test_inactive_ports_and_ports_without_position_are_skipped() -> None:
    ports = _ports(
        ("FRLRT", *LORIENT, True),
        ("FRCOC", *CONCARNEAU, False),
        ("FRXXX", float("nan"), 1.0, True),
    )
    frame = anchorages_from_ports(ports)
    assert set(frame["port_locode"]) == {"FRLRT"}


def test_a_cell_between_two_ports_goes_to_the_nearer_one() -> None:
    # Two quays 400 m apart: their rings overlap.
    west, east = (47.7347, -3.3614), (47.7347, -3.3561)
    frame = anchorages_from_ports(_ports(("WEST1", *west, True), ("EAST1", *east, True)))
    _assert_anchorage_frame(frame)
    disks = {
        "WEST1": set(h3.grid_disk(h3.latlng_to_cell(*west, 9), 2)),
        "EAST1": set(h3.grid_disk(h3.latlng_to_cell(*east, 9), 2)),
    }
    shared = disks["WEST1"] & disks["EAST1"]
    assert shared, "the test ports must be close enough to share cells"
    assert set(frame["h3"]) == disks["WEST1"] | disks["EAST1"]
    positions = {"WEST1": west, "EAST1": east}
    for row in frame.itertuples(index=False):
        lat, lon = h3.cell_to_latlng(row.h3)
        distances = {
            code: float(haversine_m(lat, lon, *positions[code]))
            for code, disk in disks.items()
            if row.h3 in disk
        }
        assert row.port_locode == min(distances, key=distances.__getitem__)
        assert row.distance_m == pytest.approx(distances[row.port_locode])


def test_bundled_ports_give_one_row_per_cell() -> None:
    ports = read_ports(default_data_dir() / "ports.csv")
    frame = anchorages_from_ports(ports)
    _assert_anchorage_frame(frame)
    active = set(ports.loc[ports["is_active"], "locode"])
    assert set(frame["port_locode"]) <= active
    assert frame["distance_m"].max() < 1000.0  # two rings at resolution 9 stay within a kilometre


def test_no_ports_no_anchorages() -> None:
    frame = anchorages_from_ports(_ports())
    assert frame.empty and list(frame.columns) == list(ANCHORAGE_COLUMNS)


@pytest.mark.parametrize(("resolution", "ring_k"), [(-1, 2), (16, 2), (9, -1)])
def test_bad_parameters_are_refused(resolution: int, ring_k: int) -> None:
    with pytest.raises(ValueError):
        anchorages_from_ports(_ports(("FRLRT", *LORIENT, True)), resolution, ring_k)


def test_ports_without_required_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="ports: missing columns: latitude"):
        anchorages_from_ports(pd.DataFrame({"locode": ["FRLRT"], "longitude": [1.0]}))


_offsets = st.tuples(st.floats(-0.01, 0.01), st.floats(-0.01, 0.01))


@settings(max_examples=40, deadline=None)
@given(st.lists(_offsets, min_size=1, max_size=5), st.integers(0, 3))
def test_every_cell_goes_to_its_nearest_covering_port(
    offsets: list[tuple[float, float]], ring_k: int
) -> None:
    coordinates = [(LORIENT[0] + dlat, LORIENT[1] + dlon) for dlat, dlon in offsets]
    ports = _ports(*((f"P{i:04d}", lat, lon, True) for i, (lat, lon) in enumerate(coordinates)))
    frame = anchorages_from_ports(ports, ring_k=ring_k).set_index("h3")
    assert frame.index.is_unique
    for lat, lon in coordinates:
        for cell in h3.grid_disk(h3.latlng_to_cell(lat, lon, 9), ring_k):
            clat, clon = h3.cell_to_latlng(cell)
            assert frame.loc[cell, "distance_m"] <= float(haversine_m(clat, clon, lat, lon)) + 1e-6
    for cell, row in frame.iterrows():
        clat, clon = h3.cell_to_latlng(cell)
        port = ports.set_index("locode").loc[row["port_locode"]]
        assert row["distance_m"] == pytest.approx(
            float(haversine_m(clat, clon, port["latitude"], port["longitude"]))
        )


# --- from stationary positions ----------------------------------------------------------------


MOORING = (47.7000, -3.3000)  # off Lorient, not a listed port


def test_cells_need_min_stops_distinct_vessel_days() -> None:
    positions = _positions(
        # vessel 1 on two days, vessel 2 on one day: three (vessel, day) stops
        (1, *MOORING, 0.1, DAY),
        (1, *MOORING, 0.0, DAY + timedelta(hours=3)),  # same vessel-day: counts once
        (1, *MOORING, 0.2, DAY + timedelta(days=1)),
        (2, *MOORING, 0.3, DAY),
    )
    ports = _ports(("FRLRT", *LORIENT, True))
    kept = anchorages_from_stationary_positions(positions, ports, min_stops=3)
    _assert_anchorage_frame(kept)
    cell = h3.latlng_to_cell(*MOORING, 9)
    assert kept["h3"].tolist() == [cell]
    assert kept.loc[0, "port_locode"] == "FRLRT"
    assert kept.loc[0, "source"] == "positions"
    clat, clon = h3.cell_to_latlng(cell)
    assert kept.loc[0, "distance_m"] == pytest.approx(float(haversine_m(clat, clon, *LORIENT)))
    assert anchorages_from_stationary_positions(positions, ports, min_stops=4).empty


def test_moving_positions_and_positions_without_speed_do_not_count() -> None:
    positions = _positions(
        (1, *MOORING, 0.4, DAY),
        (2, *MOORING, 0.6, DAY),  # too fast
        (3, *MOORING, None, DAY),  # unknown speed
        (4, *MOORING, 0.5, DAY),  # the threshold itself is stationary
    )
    ports = _ports(("FRLRT", *LORIENT, True))
    assert anchorages_from_stationary_positions(positions, ports, min_stops=3).empty
    kept = anchorages_from_stationary_positions(positions, ports, min_stops=2)
    assert len(kept) == 1
    faster = anchorages_from_stationary_positions(positions, ports, min_stops=3, max_speed_knots=1)
    assert len(faster) == 1


def test_days_are_utc_days_and_naive_times_are_utc() -> None:
    late = datetime(2025, 3, 3, 23, 30)
    positions = _positions(
        (1, *MOORING, 0.0, late),
        (1, *MOORING, 0.0, late + timedelta(hours=1)),  # next UTC day
        (1, *MOORING, 0.0, late + timedelta(hours=2)),
    )
    kept = anchorages_from_stationary_positions(positions, _ports(), min_stops=2)
    assert len(kept) == 1
    assert kept.loc[0, "port_locode"] is None
    assert np.isnan(kept.loc[0, "distance_m"])


def test_nearest_active_port_is_named_and_far_cells_can_be_dropped() -> None:
    far_at_sea = (46.5, -5.5)
    positions = _positions(
        *((v, *MOORING, 0.0, DAY) for v in range(3)),
        *((v, *far_at_sea, 0.0, DAY) for v in range(3)),
    )
    ports = _ports(("FRLRT", *LORIENT, False), ("FRCOC", *CONCARNEAU, True))
    kept = anchorages_from_stationary_positions(positions, ports)
    assert len(kept) == 2
    assert set(kept["port_locode"]) == {"FRCOC"}  # Lorient is inactive
    near = anchorages_from_stationary_positions(positions, ports, max_port_distance_m=60_000)
    assert near["h3"].tolist() == [h3.latlng_to_cell(*MOORING, 9)]


def test_positions_without_required_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="positions: missing columns: speed"):
        anchorages_from_stationary_positions(
            pd.DataFrame(
                {"vessel_id": [1], "latitude": [1.0], "longitude": [1.0], "datetime_utc": [DAY]}
            ),
            _ports(),
        )


def test_no_positions_no_anchorages() -> None:
    frame = anchorages_from_stationary_positions(_positions(), _ports(("FRLRT", *LORIENT, True)))
    assert frame.empty and list(frame.columns) == list(ANCHORAGE_COLUMNS)


# --- merge ------------------------------------------------------------------------------------


def test_merge_prefers_port_rows_whatever_the_argument_order() -> None:
    ports = _ports(("FRLRT", *LORIENT, True))
    from_ports = anchorages_from_ports(ports, ring_k=1)
    port_cell = h3.latlng_to_cell(*LORIENT, 9)
    from_positions = anchorages_from_stationary_positions(
        _positions(
            *((v, *LORIENT, 0.0, DAY) for v in range(3)),
            *((v, *MOORING, 0.0, DAY) for v in range(3)),
        ),
        ports,
    )
    assert port_cell in set(from_positions["h3"])
    for merged in (
        merge_anchorages(from_ports, from_positions),
        merge_anchorages(from_positions, from_ports),
    ):
        _assert_anchorage_frame(merged)
        assert len(merged) == 7 + 1
        by_cell = merged.set_index("h3")
        assert by_cell.loc[port_cell, "source"] == "port"
        assert by_cell.loc[h3.latlng_to_cell(*MOORING, 9), "source"] == "positions"


def test_merge_of_empty_frames_is_empty() -> None:
    assert merge_anchorages(empty_anchorages(), empty_anchorages()).empty
    ports = anchorages_from_ports(_ports(("FRLRT", *LORIENT, True)))
    assert merge_anchorages(ports, empty_anchorages()).equals(ports)
