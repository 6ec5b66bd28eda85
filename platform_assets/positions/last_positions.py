"""Last known position of every track at an instant "now", as the reference computes it.

`last_positions(positions, vessels, now, previous=None)`: positions are enriched positions
(positions columns, `id`, `is_at_port` and optionally the other enrichment columns). Rules (the
reference's last-positions query and Python steps):

- candidates: positions with `now - window < datetime_utc < now + 1 day` and at least one
  identifier; a track is the exact (CFR, external marking, IRCS) triple; its last position is the
  latest `datetime_utc`, ties to the highest `id`;
- `emission_period_s`: seconds between the track's two most recent candidates (null if one);
- positions flagged GB with latitude in [46.2294, 46.2305] (a known faulty beacon) are dropped
  after the choice of the last position;
- tracks sharing an identifier: only the most recent is kept, matching on CFR, then IRCS, then
  external marking;
- `estimated_current_latitude/longitude`: the WGS84 direct geodesic problem from the last
  position, `speed x hours x 1852` m along `course`, for 0 <= hours since it <= 2;
- `vessel_id`: the vessel of `vessels` with the same CFR, else (CFR missing on either side) the
  same external marking, else (both missing on either side) the same IRCS.

With `previous` (the last output), a track absent from the candidates keeps its row (a vessel
that stops emitting keeps its last position), a track in both keeps the later row, and a single
new position takes its emission period from the previous last position.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from pyproj import Geod

from platform_assets.positions.columns import ENRICHED_DTYPES

__all__ = [
    "LAST_POSITION_DTYPES",
    "LAST_POSITIONS_WINDOW",
    "MAX_ESTIMATION_HOURS",
    "estimate_current_position",
    "last_positions",
    "resolve_vessel_ids",
]

LAST_POSITIONS_WINDOW = timedelta(minutes=1440)
MAX_ESTIMATION_HOURS = 2.0
_FUTURE_LIMIT = timedelta(days=1)
_FAULTY_GB_LATITUDES = (46.2294, 46.2305)
_GEOD = Geod(ellps="WGS84")

# Position column -> last positions column (the reference's names).
_RENAMED = {
    "internal_reference_number": "cfr",
    "external_reference_number": "external_immatriculation",
    "datetime_utc": "last_position_datetime_utc",
}
_IDENTIFIERS = (  # (column, vessel_identifier label), in the reference's label order
    ("cfr", "INTERNAL_REFERENCE_NUMBER"),
    ("ircs", "IRCS"),
    ("external_immatriculation", "EXTERNAL_REFERENCE_NUMBER"),
)
_TRACK = ("cfr", "external_immatriculation", "ircs")

#: Output columns and dtypes, one row per track.
LAST_POSITION_DTYPES: dict[str, str] = {
    "id": "int64",
    "cfr": "str",
    "external_immatriculation": "str",
    "ircs": "str",
    "vessel_name": "str",
    "flag_state": "str",
    "latitude": "float64",
    "longitude": "float64",
    "speed": "float64",  # knots, as reported
    "course": "float64",  # degrees, as reported
    "last_position_datetime_utc": "datetime64[us, UTC]",
    "is_manual": "boolean",
    "emission_period_s": "float64",
    "vessel_identifier": "str",  # INTERNAL_REFERENCE_NUMBER, IRCS or EXTERNAL_REFERENCE_NUMBER
    "vessel_id": "Int64",  # resolved against the vessels frame, NA when unknown
    "estimated_current_latitude": "float64",
    "estimated_current_longitude": "float64",
    **{name: dtype for name, dtype in ENRICHED_DTYPES.items() if name != "id"},
}
LAST_POSITION_COLUMNS: tuple[str, ...] = tuple(LAST_POSITION_DTYPES)


def last_positions(
    positions: pd.DataFrame,
    vessels: pd.DataFrame,
    now: datetime | pd.Timestamp,
    previous: pd.DataFrame | None = None,
    window: timedelta = LAST_POSITIONS_WINDOW,
) -> pd.DataFrame:
    """One row per track (`LAST_POSITION_DTYPES`), sorted by `id`; see the module docstring.

    `vessels` needs `vessel_id`, `cfr`, `external_immatriculation`, `ircs` (the reference
    domain's vessels table); it may be empty.
    """
    now = _utc(now)
    if "is_at_port" not in positions.columns:
        raise ValueError("positions must be enriched (no is_at_port column)")
    candidates = _candidates(positions, now, window)
    fresh = _last_of_each_track(candidates)
    if previous is not None and not previous.empty:
        fresh = _merge_previous(fresh, _typed(previous))
    fresh = fresh[~_faulty_beacon(fresh)]
    fresh = _one_track_per_vessel(fresh)
    fresh["vessel_identifier"] = _vessel_identifier(fresh)
    fresh["vessel_id"] = resolve_vessel_ids(fresh, vessels)
    latitude, longitude = estimate_current_position(fresh, now)
    fresh["estimated_current_latitude"] = latitude
    fresh["estimated_current_longitude"] = longitude
    return _typed(fresh.sort_values("id", kind="stable"))


def estimate_current_position(
    last: pd.DataFrame, now: datetime | pd.Timestamp, max_hours: float = MAX_ESTIMATION_HOURS
) -> tuple[np.ndarray, np.ndarray]:
    """Where each last position would be at `now` going on at its speed and course (WGS84
    geodesic); NaN when speed or course is missing or the position is older than `max_hours`
    or later than `now`."""
    hours = (
        _utc(now) - pd.to_datetime(last["last_position_datetime_utc"], utc=True)
    ).dt.total_seconds().to_numpy(float) / 3600
    speed = last["speed"].to_numpy(float)
    course = last["course"].to_numpy(float)
    ok = (hours >= 0) & (hours <= max_hours) & ~np.isnan(speed) & ~np.isnan(course)
    latitude = np.full(len(last), np.nan)
    longitude = np.full(len(last), np.nan)
    if ok.any():
        lon, lat, _ = _GEOD.fwd(
            last["longitude"].to_numpy(float)[ok],
            last["latitude"].to_numpy(float)[ok],
            course[ok],
            speed[ok] * hours[ok] * 1852.0,
        )
        latitude[ok], longitude[ok] = lat, lon
    return latitude, longitude


def resolve_vessel_ids(last: pd.DataFrame, vessels: pd.DataFrame) -> pd.Series:
    """`vessel_id` by CFR, else by external marking where a CFR is missing on either side, else
    by IRCS where the external marking is missing on either side too (the reference's join);
    NA when nothing matches. Among several matching vessels the lowest `vessel_id` wins."""
    result = pd.Series(pd.NA, index=last.index, dtype="Int64")
    if vessels.empty or last.empty:
        return result
    register = vessels[["vessel_id", "cfr", "external_immatriculation", "ircs"]]
    register = register.sort_values("vessel_id", kind="stable")
    no_cfr = last["cfr"].isna().to_numpy()
    no_marking = last["external_immatriculation"].isna().to_numpy()
    register_no_cfr = register["cfr"].isna()
    register_no_marking = register["external_immatriculation"].isna()
    _match(result, last, np.ones(len(last), bool), register, "cfr")
    _match(result, last, no_cfr, register, "external_immatriculation")
    _match(result, last, ~no_cfr, register[register_no_cfr], "external_immatriculation")
    for position_cfr, position_marking in (
        (True, True),
        (True, False),
        (False, True),
        (False, False),
    ):
        pool = register
        if not position_cfr:
            pool = pool[register_no_cfr.loc[pool.index]]
        if not position_marking:
            pool = pool[register_no_marking.loc[pool.index]]
        rows = (no_cfr == position_cfr) & (no_marking == position_marking)
        _match(result, last, rows, pool, "ircs")
    return result


def _match(
    result: pd.Series, last: pd.DataFrame, rows: np.ndarray, pool: pd.DataFrame, column: str
) -> None:
    """Fill unresolved `rows` of `result` with the vessel of `pool` sharing `column`."""
    todo = result.isna().to_numpy() & rows & last[column].notna().to_numpy()
    if not todo.any() or pool.empty:
        return
    pool = pool.dropna(subset=[column]).drop_duplicates(column, keep="first")
    lookup = pd.Series(pool["vessel_id"].to_numpy(), index=pool[column].to_numpy())
    found = last.loc[todo, column].map(lookup)
    result.loc[found.index] = found.astype("Int64")


# --------------------------------------------------------------------------- internals


def _utc(instant: datetime | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(instant)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _candidates(positions: pd.DataFrame, now: pd.Timestamp, window: timedelta) -> pd.DataFrame:
    frame = positions.reset_index(drop=True).rename(columns=_RENAMED)
    frame = frame.assign(
        last_position_datetime_utc=pd.to_datetime(frame["last_position_datetime_utc"], utc=True)
    )
    stamp = frame["last_position_datetime_utc"]
    identified = frame[list(_TRACK)].notna().any(axis=1)
    keep = (stamp > now - window) & (stamp < now + _FUTURE_LIMIT) & identified
    return frame[keep]


def _last_of_each_track(candidates: pd.DataFrame) -> pd.DataFrame:
    """The latest row of each track (ties: highest id) with the gap to the row before it."""
    ordered = candidates.sort_values(
        ["last_position_datetime_utc", "id"], ascending=False, kind="stable"
    )
    groups = ordered.groupby(list(_TRACK), dropna=False, sort=False)
    rank = groups.cumcount()
    last = ordered[rank == 0].copy()
    second = ordered[rank == 1]
    key_last = _track_key(last)
    second_time = pd.Series(
        second["last_position_datetime_utc"].to_numpy(), index=_track_key(second).to_numpy()
    )
    before = key_last.map(second_time)
    last["emission_period_s"] = (
        (last["last_position_datetime_utc"] - pd.to_datetime(before, utc=True))
        .dt.total_seconds()
        .to_numpy(float)
    )
    return last


def _merge_previous(fresh: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Keep previous rows of silent tracks; per track keep the later row; fill a single new
    position's emission period from the previous last position."""
    previous = previous.copy()
    fresh_key = _track_key(fresh)
    previous_key = _track_key(previous)
    previous_time = pd.Series(
        previous["last_position_datetime_utc"].to_numpy(), index=previous_key.to_numpy()
    )
    previous_id = pd.Series(previous["id"].to_numpy(), index=previous_key.to_numpy())
    before_time = pd.to_datetime(fresh_key.map(previous_time), utc=True)
    before_id = fresh_key.map(previous_id)
    newer = (
        before_time.isna()
        | (fresh["last_position_datetime_utc"] > before_time)
        | ((fresh["last_position_datetime_utc"] == before_time) & (fresh["id"] >= before_id))
    )
    fill = (
        newer & fresh["emission_period_s"].isna() & before_time.notna() & (fresh["id"] != before_id)
    )
    fresh = fresh.copy()
    fresh.loc[fill, "emission_period_s"] = (
        fresh.loc[fill, "last_position_datetime_utc"] - before_time[fill]
    ).dt.total_seconds()
    kept_fresh = fresh[newer.to_numpy(bool)]
    kept_previous = previous[~previous_key.isin(set(_track_key(kept_fresh))).to_numpy()]
    return pd.concat([kept_previous, kept_fresh], ignore_index=True)


def _track_key(frame: pd.DataFrame) -> pd.Series:
    parts = [frame[name].astype("str").fillna("\x00") for name in _TRACK]
    if frame.empty:
        return pd.Series([], dtype="str", index=frame.index)
    return parts[0].str.cat(parts[1:], sep="\x1f")


def _faulty_beacon(frame: pd.DataFrame) -> pd.Series:
    low, high = _FAULTY_GB_LATITUDES
    return (frame["flag_state"] == "GB").fillna(False) & frame["latitude"].between(low, high)


def _one_track_per_vessel(frame: pd.DataFrame) -> pd.DataFrame:
    """Where tracks share a CFR, then an IRCS, then an external marking, keep the latest."""
    frame = frame.sort_values(["last_position_datetime_utc", "id"], ascending=False, kind="stable")
    for column in ("cfr", "ircs", "external_immatriculation"):
        repeated = frame[column].notna() & frame.duplicated(column, keep="first")
        frame = frame[~repeated.to_numpy(bool)]
    return frame.copy()


def _vessel_identifier(frame: pd.DataFrame) -> pd.Series:
    label = pd.Series(pd.NA, index=frame.index, dtype="str")
    for column, name in reversed(_IDENTIFIERS):
        label = label.mask(frame[column].notna(), name)
    return label


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for name, dtype in LAST_POSITION_DTYPES.items():
        if name not in frame.columns:
            frame[name] = pd.Series(
                pd.NA if dtype in ("str", "boolean", "Int64") else np.nan, index=frame.index
            )
        if dtype.startswith("datetime64"):
            frame[name] = pd.to_datetime(frame[name], utc=True).dt.as_unit("us")
        else:
            frame[name] = frame[name].astype(dtype)
    return frame[list(LAST_POSITION_COLUMNS)].reset_index(drop=True)
