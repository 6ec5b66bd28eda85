"""Enrichment: the reference goldens, and incremental runs equal to the full recompute."""

from __future__ import annotations

from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_assets.positions.columns import ENRICHED_DTYPES, TRACK_COLUMNS
from platform_assets.positions.enrichment import (
    LateRecordError,
    enrich,
    is_at_port,
    needs_recompute_from,
    state_from_enriched,
)
from platform_assets.positions.geodesy import AnchorageIndex

_TEXT = {name: "str" for name in TRACK_COLUMNS}


def _golden(shared_data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    folder = shared_data_dir / "positions"
    positions = pd.read_csv(folder / "positions.csv", dtype=_TEXT)
    anchorages = pd.read_csv(folder / "anchorages.csv")
    expected = pd.read_csv(folder / "expected_enriched.csv").set_index("id").sort_index()
    return positions, anchorages, expected


def _close(got: pd.Series, want: pd.Series, abs_tol: float) -> np.ndarray:
    a, b = got.to_numpy(float), want.to_numpy(float)
    with np.errstate(invalid="ignore"):
        near = np.abs(a - b) <= 1e-6 * np.maximum(np.abs(a), np.abs(b)) + abs_tol
    return (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b)) | near


def test_full_enrichment_matches_the_reference(shared_data_dir: Path) -> None:
    positions, anchorages, expected = _golden(shared_data_dir)
    enriched, state = enrich(positions, anchorages)
    got = enriched.set_index("id").sort_index()
    assert dict(enriched.dtypes.astype(str)) == ENRICHED_DTYPES
    assert got.index.equals(expected.index)
    assert (got["is_at_port"] == expected["is_at_port"]).all()
    for column, abs_tol in [
        ("meters_from_previous_position", 1e-6),
        ("time_since_previous_position", 1e-9),
        ("average_speed", 1e-9),
        ("time_emitting_at_sea", 1e-9),
    ]:
        assert _close(got[column], expected[column], abs_tol).all(), column
    want = expected["is_fishing"].map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0})
    have = got["is_fishing"].astype("float64")
    boundary = (expected["time_emitting_at_sea"] - 1.0).abs() <= 1e-6
    same = (want.isna() & have.isna()) | (want == have)
    assert (same | boundary).all()
    assert boundary.sum() == 57
    assert len(state) == 40


def test_reference_data_cut_at_arbitrary_instants_equals_full(shared_data_dir: Path) -> None:
    positions, anchorages, _ = _golden(shared_data_dir)
    positions["datetime_utc"] = pd.to_datetime(positions["datetime_utc"], utc=True)
    full, full_state = enrich(positions, anchorages)
    instants = np.sort(positions["datetime_utc"].sample(25, random_state=7).unique())
    bounds = [positions["datetime_utc"].min() - pd.Timedelta(1, "s"), *instants]
    bounds.append(positions["datetime_utc"].max())
    index = AnchorageIndex.from_frame(anchorages)
    state, outputs = None, []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        batch = positions[(positions["datetime_utc"] > low) & (positions["datetime_utc"] <= high)]
        enriched, state = enrich(batch, index, state)
        outputs.append(enriched)
    _assert_same(pd.concat(outputs), full)
    pd.testing.assert_frame_equal(_by_track(state), _by_track(full_state))


def _assert_same(upserts: pd.DataFrame, full: pd.DataFrame) -> None:
    merged = upserts.drop_duplicates("id", keep="last").set_index("id").sort_index()
    pd.testing.assert_frame_equal(merged, full.set_index("id").sort_index(), check_exact=True)


def _by_track(state: pd.DataFrame) -> pd.DataFrame:
    return state.sort_values("id").reset_index(drop=True)


# --- small hand-made tracks -------------------------------------------------------------

PORT = (47.7347, -3.3614)  # Lorient
PORT_CELL = h3.latlng_to_cell(*PORT, 9)
ANCHORAGES = pd.DataFrame({"h3": sorted(h3.grid_disk(PORT_CELL, 1))})
T0 = pd.Timestamp("2024-05-06T00:00:00Z")


def _frame(rows: list[tuple[int, str | None, float, float, float]]) -> pd.DataFrame:
    """(id, cfr, minutes after T0, latitude, longitude) rows; IRCS and marking left empty."""
    return pd.DataFrame(
        {
            "id": [r[0] for r in rows],
            "internal_reference_number": pd.Series([r[1] for r in rows], dtype="str"),
            "ircs": pd.Series([None] * len(rows), dtype="str"),
            "external_reference_number": pd.Series([None] * len(rows), dtype="str"),
            "datetime_utc": [T0 + pd.Timedelta(r[2], "min") for r in rows],
            "latitude": [r[3] for r in rows],
            "longitude": [r[4] for r in rows],
        }
    )


def test_first_position_equal_timestamps_and_port() -> None:
    rows = [
        (1, "A", 0, *PORT),  # at port
        (2, "A", 30, 47.70, -3.40),  # leaves: the port-to-sea interval is not counted
        (3, "A", 30, 47.70, -3.40),  # same instant, same place: 0/0 speed -> NaN
        (4, "A", 30, 47.71, -3.40),  # same instant, moved: inf
        (5, "A", 100, 47.72, -3.40),
    ]
    got = enrich(_frame(rows), ANCHORAGES)[0].set_index("id")
    assert got["is_at_port"].tolist() == [True, False, False, False, False]
    assert np.isnan(got.loc[1, "meters_from_previous_position"])
    assert got.loc[3, "time_since_previous_position"] == 0
    assert np.isnan(got.loc[3, "average_speed"]) and np.isinf(got.loc[4, "average_speed"])
    assert got["time_emitting_at_sea"].tolist() == [0, 0, 0, 0, pytest.approx(70 / 60)]
    assert got["is_fishing"].tolist()[:4] == [False] * 4


def test_late_record_is_refused_and_located() -> None:
    first, state = enrich(_frame([(1, "A", 0, 47.0, -4.0), (2, "A", 10, 47.01, -4.0)]), ANCHORAGES)
    late = _frame([(3, "A", 5, 47.005, -4.0), (4, "B", 0, 46.0, -4.0)])
    with pytest.raises(LateRecordError, match="position id 3"):
        enrich(late, ANCHORAGES, state)
    plan = needs_recompute_from(state, late)
    assert plan["id"].tolist() == [3]
    assert plan["datetime_utc"].tolist() == [T0 + pd.Timedelta(5, "min")]
    # a repeat of the carried position is a duplicate, dropped quietly
    again, same_state = enrich(_frame([(2, "A", 10, 47.01, -4.0)] * 2), ANCHORAGES, state)
    assert again.empty
    pd.testing.assert_frame_equal(_by_track(same_state), _by_track(state))
    assert needs_recompute_from(state, _frame([(2, "A", 10, 47.01, -4.0)])).empty


def test_state_rebuilt_from_stored_rows_equals_carried_state() -> None:
    rows = [(i, "A", 10 * i, 47.0 + 0.002 * i, -4.0) for i in range(1, 9)]
    rows += [(100 + i, None, 7 * i, 46.0, -4.0 + 0.001 * i) for i in range(5)]
    frame = _frame(rows)
    enriched, state = enrich(frame, ANCHORAGES)
    rebuilt = state_from_enriched(frame.merge(enriched, on="id"))
    pd.testing.assert_frame_equal(_by_track(rebuilt), _by_track(state))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-89.9, 89.9), st.floats(-180, 179.999)), max_size=40))
def test_anchorage_lookup_equals_plain_h3(points: list[tuple[float, float]]) -> None:
    cells = [h3.latlng_to_cell(lat, lon, 9) for lat, lon in points[::2]]
    cells += list(h3.grid_disk(h3.latlng_to_cell(-17.0, 179.999, 9), 2))  # across 180
    near = [(lat + 0.001, lon) for lat, lon in points] + [(-17.0, -179.999), (-17.0, 179.998)]
    lat = np.array([p[0] for p in points + near])
    lon = np.array([p[1] for p in points + near])
    frame = pd.DataFrame({"h3": cells})
    want = np.array(
        [h3.latlng_to_cell(a, b, 9) in set(cells) for a, b in zip(lat, lon, strict=True)]
    )
    assert (is_at_port(lat, lon, frame) == want).all()


# --- property: any split into batches, late and duplicate records -> the full recompute --


@st.composite
def _tracks(draw: st.DrawFn) -> pd.DataFrame:
    identities = [
        ("FRA1", "AB", "X1"),
        ("FRA1", "CD", "X1"),
        (None, "EF", None),
        (None, None, "X9"),
    ]
    chosen = draw(st.lists(st.sampled_from(identities), min_size=1, max_size=3, unique=True))
    rows = []
    for cfr, ircs, marking in chosen:
        minutes = 0
        for _ in range(draw(st.integers(1, 14))):
            minutes += draw(st.sampled_from([0, 0, 5, 10, 10, 30, 60, 61, 300]))
            place = draw(st.sampled_from(["port", "sea", "sea", "sea"]))
            if place == "port":
                lat, lon = PORT
            else:
                lat = 47.5 + draw(st.integers(0, 40)) * 0.0007
                lon = -4.0 + draw(st.integers(0, 40)) * 0.0011
            rows.append((cfr, ircs, marking, T0 + pd.Timedelta(minutes, "min"), lat, lon))
    frame = pd.DataFrame(
        rows,
        columns=[
            *TRACK_COLUMNS[:1],
            "ircs",
            "external_reference_number",
            "datetime_utc",
            "latitude",
            "longitude",
        ],  # fmt: skip
    )
    for name in TRACK_COLUMNS:
        frame[name] = frame[name].astype("str")
    ids = draw(st.permutations(range(1000, 1000 + len(frame))))
    frame.insert(0, "id", np.array(ids, dtype=np.int64))
    return frame


def _replay(batches: list[pd.DataFrame]) -> pd.DataFrame:
    """What the storage layer does: store, enrich on-time rows from the state, re-enrich late
    tracks from the state before their late record; upsert every output row by id."""
    stored = batches[0].iloc[0:0]
    enriched_store = pd.DataFrame()
    state = None
    for batch in batches:
        late = needs_recompute_from(state, batch)
        stored = pd.concat([stored, batch]).drop_duplicates("id", keep="first")
        if late.empty:
            rows = batch
        else:
            rows, rebuilt = [batch], []
            for _, track in late.iterrows():
                of_track = _same_track(stored, track)
                key = list(zip(of_track["datetime_utc"], of_track["id"], strict=True))
                before = np.array([k < (track["datetime_utc"], track["id"]) for k in key], bool)
                history = of_track[before].merge(enriched_store, on="id")
                rebuilt.append(state_from_enriched(history))
                rows.append(of_track[~before])
            late_keys = set(map(tuple, late[list(TRACK_COLUMNS)].astype(object).values))
            keep = [
                tuple(r) not in late_keys
                for r in state[list(TRACK_COLUMNS)].astype(object).itertuples(index=False)
            ]
            state = pd.concat([state[keep], *[r for r in rebuilt if not r.empty]])
            rows = pd.concat(rows).drop_duplicates("id", keep="first")
        enriched, state = enrich(rows, ANCHORAGES, state)
        enriched_store = pd.concat([enriched_store, enriched]).drop_duplicates("id", keep="last")
    return enriched_store


def _same_track(frame: pd.DataFrame, track: pd.Series) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for name in TRACK_COLUMNS:
        value = track[name]
        column = frame[name]
        mask &= (column.isna() if pd.isna(value) else column == value).to_numpy(bool)
    return frame[mask].sort_values(["datetime_utc", "id"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tracks(), st.data())
def test_incremental_equals_full_whatever_the_batches(
    tracks: pd.DataFrame, data: st.DataObject
) -> None:
    full, _ = enrich(tracks, ANCHORAGES)
    count = data.draw(st.integers(1, 5))
    # Each record goes to an arbitrary batch (late records follow), some come twice.
    where = data.draw(
        st.lists(st.integers(0, count - 1), min_size=len(tracks), max_size=len(tracks))
    )
    copies = data.draw(
        st.lists(st.tuples(st.integers(0, len(tracks) - 1), st.integers(0, count - 1)), max_size=4)
    )
    parts = [tracks[np.array(where) == b] for b in range(count)]
    for row, batch in copies:
        parts[batch] = pd.concat([parts[batch], tracks.iloc[[row]]])
    batches = [p for p in parts if not p.empty]
    _assert_same(_replay(batches), full)
