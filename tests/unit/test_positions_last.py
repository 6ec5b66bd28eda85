"""Last positions: the reference golden, identity fallback, projection, silent tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod

from platform_assets.positions.columns import TRACK_COLUMNS
from platform_assets.positions.enrichment import enrich
from platform_assets.positions.last_positions import LAST_POSITION_DTYPES, last_positions

NOW = pd.Timestamp("2024-05-08T01:30:00Z")
NO_VESSELS = pd.DataFrame(columns=["vessel_id", "cfr", "external_immatriculation", "ircs"])


def test_matches_the_reference(shared_data_dir: Path) -> None:
    folder = shared_data_dir / "positions"
    positions = pd.read_csv(folder / "positions.csv", dtype={n: "str" for n in TRACK_COLUMNS})
    enriched, _ = enrich(positions, pd.read_csv(folder / "anchorages.csv"))
    got = last_positions(positions.merge(enriched, on="id"), NO_VESSELS, NOW)
    want = pd.read_csv(folder / "expected_last_positions.csv")
    assert dict(got.dtypes.astype(str)) == LAST_POSITION_DTYPES
    assert got["id"].tolist() == want["id"].tolist()
    for column in want.columns:
        have, expected = got[column], want[column]
        if column == "last_position_datetime_utc":
            assert (have == pd.to_datetime(expected, utc=True)).all()
        elif column.startswith("estimated") or column == "emission_period_s":
            a, b = have.to_numpy(float), expected.to_numpy(float)
            assert ((np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= 1e-7)).all(), column
        elif have.dtype.kind == "f":
            assert np.allclose(have, expected, rtol=1e-6, equal_nan=True), column
        else:
            assert have.astype(object).tolist() == expected.astype(object).tolist(), column


def _positions(rows: list[dict[str, object]]) -> pd.DataFrame:
    base = {
        "internal_reference_number": None,
        "external_reference_number": None,
        "ircs": None,
        "vessel_name": "V",
        "flag_state": "FR",
        "latitude": 47.0,
        "longitude": -4.0,
        "speed": 0.0,
        "course": 0.0,
        "is_manual": False,
        "is_at_port": False,
    }
    frame = pd.DataFrame([{**base, **row} for row in rows])
    for name in TRACK_COLUMNS:
        frame[name] = frame[name].astype("str")
    frame["datetime_utc"] = pd.to_datetime(frame["datetime_utc"], utc=True)
    return frame


def test_projection_is_geodesic_and_limited_to_two_hours() -> None:
    frame = _positions(
        [
            {
                "id": 1,
                "internal_reference_number": "A",
                "datetime_utc": NOW - pd.Timedelta("1h"),
                "speed": 10.0,
                "course": 90.0,
                "latitude": 0.0,
                "longitude": 0.0,
            },
            {
                "id": 2,
                "internal_reference_number": "B",
                "datetime_utc": NOW - pd.Timedelta("2h1s"),
                "speed": 10.0,
                "course": 90.0,
            },
            {
                "id": 3,
                "internal_reference_number": "C",
                "datetime_utc": NOW + pd.Timedelta("1min"),
                "speed": 10.0,
                "course": 90.0,
            },
            {"id": 4, "internal_reference_number": "D", "datetime_utc": NOW, "speed": None},
        ]  # fmt: skip
    ).set_index("id", drop=False)
    got = last_positions(frame, NO_VESSELS, NOW).set_index("id")
    _, _, metres = Geod(ellps="WGS84").inv(
        0.0,
        0.0,
        got.loc[1, "estimated_current_longitude"],
        got.loc[1, "estimated_current_latitude"],
    )
    assert metres == pytest.approx(18_520.0, abs=1e-6)
    assert got.loc[1, "estimated_current_latitude"] == pytest.approx(0.0, abs=1e-9)
    assert got.loc[[2, 3, 4], "estimated_current_latitude"].isna().all()


def test_vessel_resolved_by_cfr_then_marking_then_ircs() -> None:
    vessels = pd.DataFrame(
        {
            "vessel_id": [10, 20, 30, 40],
            "cfr": ["FRA1", None, None, "FRA9"],
            "external_immatriculation": [None, "LO1", None, "LO9"],
            "ircs": [None, None, "CALL", "CALL9"],
        }
    )
    recent = NOW - pd.Timedelta("10min")
    frame = _positions(
        [
            {"id": 1, "internal_reference_number": "FRA1", "datetime_utc": recent},
            {
                "id": 2,
                "internal_reference_number": "FRA2",
                "external_reference_number": "LO1",
                "datetime_utc": recent,
            },  # vessel 20 has no CFR: the marking decides
            {"id": 3, "ircs": "CALL", "datetime_utc": recent},
            {
                "id": 4,
                "internal_reference_number": "FRA3",
                "external_reference_number": "LO9",
                "datetime_utc": recent,
            },  # both CFRs known and different: no match on the marking
            {"id": 5, "ircs": "NOPE", "datetime_utc": recent},
        ]  # fmt: skip
    )
    got = last_positions(frame, vessels, NOW).set_index("id")
    assert got["vessel_id"].astype(object).tolist() == [10, 20, 30, pd.NA, pd.NA]
    assert got["vessel_identifier"].tolist() == [
        "INTERNAL_REFERENCE_NUMBER",
        "INTERNAL_REFERENCE_NUMBER",
        "IRCS",
        "INTERNAL_REFERENCE_NUMBER",
        "IRCS",
    ]


def test_selection_rules() -> None:
    frame = _positions(
        [
            {"id": 1, "internal_reference_number": "A", "datetime_utc": NOW - pd.Timedelta("3h")},
            {"id": 2, "internal_reference_number": "A", "datetime_utc": NOW - pd.Timedelta("1h")},
            {"id": 3, "internal_reference_number": "A", "datetime_utc": NOW - pd.Timedelta("1h")},
            # same CFR, another IRCS: a second track, older, dropped as the same vessel
            {
                "id": 4,
                "internal_reference_number": "A",
                "ircs": "X",
                "datetime_utc": NOW - pd.Timedelta("2h"),
            },
            {
                "id": 5,
                "internal_reference_number": "G",
                "flag_state": "GB",
                "latitude": 46.23,
                "datetime_utc": NOW - pd.Timedelta("1h"),
            },  # faulty beacon
            {
                "id": 6,
                "internal_reference_number": "OLD",
                "datetime_utc": NOW - pd.Timedelta("25h"),
            },
            {"id": 7, "datetime_utc": NOW},  # no identifier
        ]  # fmt: skip
    )
    got = last_positions(frame, NO_VESSELS, NOW)
    assert got["id"].tolist() == [3]
    assert got["emission_period_s"].tolist() == [0.0]


def test_silent_track_keeps_its_last_position() -> None:
    first = _positions(
        [
            {"id": 1, "internal_reference_number": "A", "datetime_utc": NOW - pd.Timedelta("2h")},
            {
                "id": 2,
                "internal_reference_number": "B",
                "datetime_utc": NOW - pd.Timedelta("90min"),
            },
        ]
    )
    previous = last_positions(first, NO_VESSELS, NOW - pd.Timedelta("1h"))
    later = NOW + pd.Timedelta("2d")
    new = _positions(
        [{"id": 3, "internal_reference_number": "B", "datetime_utc": later - pd.Timedelta("1h")}]
    )
    got = last_positions(new, NO_VESSELS, later, previous=previous).set_index("id")
    assert sorted(got.index) == [1, 3]  # A is silent for two days and is still there
    assert got.loc[3, "emission_period_s"] == pytest.approx((2 * 24 + 1.5 - 1) * 3600)
    # an older batch does not replace a newer stored row
    stale = _positions(
        [{"id": 9, "internal_reference_number": "A", "datetime_utc": NOW - pd.Timedelta("3h")}]
    )
    again = last_positions(stale, NO_VESSELS, NOW - pd.Timedelta("1h"), previous=previous)
    assert sorted(again["id"]) == [1, 2]
