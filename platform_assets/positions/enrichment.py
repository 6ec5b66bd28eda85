"""Per-track enrichment of positions, vectorised, with a carried state so incremental = full.

A track is one exact (CFR, IRCS, external marking) triple (`columns.TRACK_COLUMNS`); inside a
track, positions are ordered by `datetime_utc`, then `id`. Every enriched value of a row depends
only on the row, its predecessor and (for `is_fishing`) its successor, plus the running time at
sea. So a small per-track state (`TrackState`: the last position with its enrichment, the exact
time at sea, the candidacy of the position before it) is enough to continue a track exactly where
the previous batch stopped:

    enriched, state = enrich(batch, anchorages, state)

returns every batch row enriched **and** the previous last row of each continued track again
(its `is_fishing` depended on a successor it had not seen). Upsert both by `id`: the stored
result is then identical to enriching everything at once, whatever the batches.

A late record (at or before its track's carried last position) cannot be enriched from the
state: `enrich` raises `LateRecordError`. `needs_recompute_from(state, batch)` lists those
tracks with the instant to replay from; rebuild their state from the stored rows before that
instant (`state_from_enriched`) and enrich the stored rows from there plus the batch.
A record repeating the carried last position's `id`, or an `id` twice in a batch, is dropped.

Time at sea is accumulated in integer microseconds, so no floating summation order can make an
incremental run differ from a full one, not even by one bit at the 1-hour fishing threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from platform_assets.positions.columns import (
    ENRICHED_COLUMNS,
    ENRICHED_DTYPES,
    ENRICHMENT_INPUT_COLUMNS,
    TRACK_COLUMNS,
)
from platform_assets.positions.geodesy import METERS_PER_NAUTICAL_MILE, AnchorageIndex, haversine_m

__all__ = [
    "EnrichmentParameters",
    "LateRecordError",
    "STATE_DTYPES",
    "empty_state",
    "enrich",
    "is_at_port",
    "needs_recompute_from",
    "state_from_enriched",
]


@dataclass(frozen=True)
class EnrichmentParameters:
    """The reference's parameters (Monitorfish pipeline)."""

    min_fishing_speed_knots: float = 0.025
    max_fishing_speed_knots: float = 5.5
    min_minutes_at_sea: int = 60  # fishing needs strictly more emission at sea than this
    anchorage_resolution: int = 9


DEFAULT_PARAMETERS = EnrichmentParameters()

#: The carried state: one row per track, its last position (`id`, `datetime_utc`, coordinates)
#: with that row's enrichment, the exact time at sea in microseconds, and whether the row before
#: it was a fishing candidate (NA: unknown, or no row before).
STATE_DTYPES: dict[str, str] = {
    **dict.fromkeys(TRACK_COLUMNS, "str"),
    "id": "int64",
    "datetime_utc": "datetime64[us, UTC]",
    "latitude": "float64",
    "longitude": "float64",
    **{name: dtype for name, dtype in ENRICHED_DTYPES.items() if name != "id"},
    "sea_time_us": "int64",
    "previous_candidate": "boolean",
}

_US_PER_HOUR = 3_600_000_000


class LateRecordError(ValueError):
    """A batch row is at or before its track's carried last position."""


def empty_state() -> pd.DataFrame:
    """A `TrackState` with no track."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in STATE_DTYPES.items()})


def is_at_port(
    latitude: np.ndarray, longitude: np.ndarray, anchorages: pd.DataFrame | AnchorageIndex
) -> np.ndarray:
    """Whether each position's H3 cell (resolution 9) is one of the anchorages' `h3` cells."""
    index = (
        anchorages
        if isinstance(anchorages, AnchorageIndex)
        else AnchorageIndex.from_frame(anchorages)
    )
    return index.contains(latitude, longitude)


def enrich(
    positions: pd.DataFrame,
    anchorages: pd.DataFrame | AnchorageIndex,
    state: pd.DataFrame | None = None,
    parameters: EnrichmentParameters = DEFAULT_PARAMETERS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Enrich `positions` (`columns.ENRICHMENT_INPUT_COLUMNS`, unique `id`) continuing `state`.

    Returns (enriched, new_state). `enriched` has `columns.ENRICHED_DTYPES`: one row per batch
    position plus, for each track continued from `state`, its previous last row (re-decided
    `is_fishing`); rows are in track and time order. `new_state` holds every track of `state` and
    of the batch. Raises `LateRecordError` when a row is not after its track's carried position.
    """
    missing = [name for name in ENRICHMENT_INPUT_COLUMNS if name not in positions.columns]
    if missing:
        raise ValueError(f"positions frame lacks columns {missing}")
    state = empty_state() if state is None else state
    batch = _prepared(positions)
    batch = batch.drop_duplicates("id", keep="first")
    batch, carried = _attach_state(batch, state)

    index = (
        anchorages
        if isinstance(anchorages, AnchorageIndex)
        else AnchorageIndex.from_frame(anchorages, parameters.anchorage_resolution)
    )
    order = np.lexsort(
        (batch["id"].to_numpy(), batch["_time_us"].to_numpy(), batch["_track"].to_numpy())
    )
    batch = batch.take(order).reset_index(drop=True)
    enriched_rows, last_rows, reemitted = _enrich_sorted(batch, carried, index, parameters)

    untouched = state[key_positions(_track_keys(state), _track_keys(last_rows)) < 0]
    new_state = _typed_state(pd.concat([_typed_state(untouched), last_rows], ignore_index=True))
    enriched = (
        pd.concat([reemitted, enriched_rows], ignore_index=True)
        if len(reemitted)
        else enriched_rows
    )
    return _typed_enriched(enriched), new_state


def needs_recompute_from(state: pd.DataFrame, positions: pd.DataFrame) -> pd.DataFrame:
    """Tracks of `positions` with a row at or before their carried last position (other than a
    repeat of that very `id`): TRACK_COLUMNS + `datetime_utc` and `id` of their earliest such row.

    The caller re-enriches each of these tracks from the stored rows strictly before that
    (`datetime_utc`, `id`) - see `state_from_enriched` - so the result equals a full recompute.
    """
    columns = [*TRACK_COLUMNS, "datetime_utc", "id"]
    if state is None or state.empty or positions.empty:
        return pd.DataFrame({name: pd.Series(dtype=STATE_DTYPES[name]) for name in columns})
    batch = _prepared(positions)
    batch, carried = _attach_state(batch, state, check=False)
    late = batch[batch["_late"]].sort_values(["_track", "_time_us", "id"], kind="stable")
    late = late.drop_duplicates("_track", keep="first")
    return late[columns].reset_index(drop=True)


def state_from_enriched(enriched_positions: pd.DataFrame) -> pd.DataFrame:
    """The `TrackState` after the given enriched rows (positions columns + ENRICHED_COLUMNS):
    for each track, its last row and the candidacy of the row before it.

    Pass the stored rows of the affected tracks strictly before the replay instant (the last two
    of each track are enough). `time_emitting_at_sea` must be stored as double precision.
    """
    if enriched_positions.empty:
        return empty_state()
    rows = _prepared(enriched_positions, keep=list(ENRICHED_COLUMNS[1:]))
    rows = rows.sort_values(["_track", "_time_us", "id"], kind="stable", ignore_index=True)
    candidate_lo, candidate_hi = _candidates(
        rows["is_at_port"].to_numpy(bool),
        rows["average_speed"].to_numpy(float),
        DEFAULT_PARAMETERS,
    )
    track = rows["_track"].to_numpy()
    last = np.append(track[1:] != track[:-1], True)
    has_previous = np.insert(track[1:] == track[:-1], 0, False)
    previous = pd.array(
        np.where(np.roll(candidate_lo, 1), True, np.where(np.roll(candidate_hi, 1), pd.NA, False)),
        dtype="boolean",
    )
    previous[~has_previous] = pd.NA
    state = rows.loc[last, [*TRACK_COLUMNS, "id", "datetime_utc", "latitude", "longitude"]].copy()
    for name in ENRICHED_COLUMNS[1:]:
        state[name] = rows.loc[last, name].to_numpy()
    hours = rows.loc[last, "time_emitting_at_sea"].to_numpy(float)
    state["sea_time_us"] = np.rint(hours * _US_PER_HOUR).astype(np.int64)
    state["previous_candidate"] = previous[last]
    return _typed_state(state.reset_index(drop=True))


# --------------------------------------------------------------------------- internals


def _prepared(positions: pd.DataFrame, keep: list[str] | None = None) -> pd.DataFrame:
    """Input columns, typed, plus `_time_us` (int64 microseconds) and `_key` (track label)."""
    names = [*ENRICHMENT_INPUT_COLUMNS, *(keep or [])]
    frame = positions[names].copy()
    for name in TRACK_COLUMNS:
        frame[name] = frame[name].astype("str")
    frame["id"] = frame["id"].astype("int64")
    times = pd.to_datetime(frame["datetime_utc"], utc=True)
    if times.isna().any():
        raise ValueError(
            f"positions without datetime_utc: ids {frame.loc[times.isna(), 'id'].tolist()[:10]}"
        )
    frame["datetime_utc"] = times.dt.as_unit("us")
    frame["_time_us"] = frame["datetime_utc"].astype("int64")
    frame["latitude"] = frame["latitude"].astype(float)
    frame["longitude"] = frame["longitude"].astype(float)
    # one code per track by hashing the three columns; the string label only per distinct track
    codes = frame.groupby(list(TRACK_COLUMNS), dropna=False, sort=False).ngroup().to_numpy()
    firsts = np.unique(codes, return_index=True)[1]
    labels = _track_keys(frame.iloc[firsts]).to_numpy(dtype=object)
    frame["_key"] = labels[codes] if len(codes) else pd.Series([], dtype="str")
    frame["_track"] = codes.astype(np.int64)
    return frame


def key_positions(keys: pd.Series, table: pd.Series) -> np.ndarray:
    """Position of each of ``keys`` in ``table`` (distinct keys), -1 when absent. Factorises both
    at once (Series.isin or a dict on strings would make a Python object per key)."""
    if len(keys) == 0 or len(table) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    codes, _ = pd.factorize(pd.concat([table, keys], ignore_index=True))
    where = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
    where[codes[: len(table)]] = np.arange(len(table))
    return where[codes[len(table) :]]


def _track_keys(frame: pd.DataFrame) -> pd.Series:
    """A string label per track: the triple with NA spelled apart from any text."""
    if frame.empty:
        return pd.Series([], dtype="str", index=frame.index)
    parts = [frame[name].astype("str").fillna("\x00") for name in TRACK_COLUMNS]
    return parts[0].str.cat(parts[1:], sep="\x1f")


def _attach_state(
    batch: pd.DataFrame, state: pd.DataFrame, check: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop repeats of the carried position; flag or refuse late rows; return the state rows of
    the batch's tracks (indexed by `_track`)."""
    state = _typed_state(state)
    if state.empty:
        batch["_late"] = False
        return batch, state.assign(_track=pd.Series(dtype="int64")).set_index("_track")
    state_keys = _track_keys(state)
    firsts = batch.drop_duplicates("_track")
    found = key_positions(state_keys, firsts["_key"])
    relevant = found >= 0
    carried = state[relevant].copy()
    carried["_track"] = firsts["_track"].to_numpy(np.int64)[found[relevant]]
    carried = carried.set_index("_track")
    last_id = batch["_track"].map(carried["id"])
    last_time = batch["_track"].map(carried["datetime_utc"].astype("int64"))
    has_state = last_id.notna()
    repeat = has_state & (batch["id"] == last_id)
    batch = batch[~repeat].copy()
    last_id, last_time, has_state = last_id[~repeat], last_time[~repeat], has_state[~repeat]
    late = has_state & (
        (batch["_time_us"] < last_time)
        | ((batch["_time_us"] == last_time) & (batch["id"] < last_id))
    )
    batch["_late"] = late.to_numpy(bool)
    if check and batch["_late"].any():
        first = batch[batch["_late"]].iloc[0]
        raise LateRecordError(
            f"position id {first['id']} at {first['datetime_utc']} of track "
            f"{tuple(first[name] for name in TRACK_COLUMNS)} is not after the track's carried "
            f"last position; re-enrich the track (see needs_recompute_from)"
        )
    return batch, carried


def _candidates(
    at_port: np.ndarray, speed: np.ndarray, parameters: EnrichmentParameters
) -> tuple[np.ndarray, np.ndarray]:
    """Fishing candidacy with unknown speeds taken as not fishing (lo) and as fishing (hi)."""
    known = ~np.isnan(speed)
    with np.errstate(invalid="ignore"):
        in_range = (speed >= parameters.min_fishing_speed_knots) & (
            speed <= parameters.max_fishing_speed_knots
        )
    return ~at_port & known & in_range, ~at_port & (~known | in_range)


def _enrich_sorted(
    batch: pd.DataFrame,
    carried: pd.DataFrame,
    index: AnchorageIndex,
    parameters: EnrichmentParameters,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    n = len(batch)
    track = batch["_track"].to_numpy()
    time_us = batch["_time_us"].to_numpy()
    latitude = batch["latitude"].to_numpy(float)
    longitude = batch["longitude"].to_numpy(float)
    at_port = index.contains(latitude, longitude)

    first = np.ones(n, dtype=bool)
    first[1:] = track[1:] != track[:-1]
    last = np.ones(n, dtype=bool)
    last[:-1] = first[1:]

    # Predecessor: the previous row of the track, or the carried last position.
    prev_index = np.arange(n) - 1
    prev_lat = np.where(first, np.nan, latitude[prev_index])
    prev_lon = np.where(first, np.nan, longitude[prev_index])
    prev_time = np.where(first, 0, time_us[prev_index])
    prev_port = np.where(first, False, at_port[prev_index])
    has_prev = ~first
    carried_rows = first & np.isin(track, carried.index.to_numpy())
    if carried_rows.any():
        source = carried.loc[track[carried_rows]]
        prev_lat[carried_rows] = source["latitude"].to_numpy(float)
        prev_lon[carried_rows] = source["longitude"].to_numpy(float)
        prev_time[carried_rows] = source["datetime_utc"].astype("int64").to_numpy()
        prev_port[carried_rows] = source["is_at_port"].to_numpy(bool)
        has_prev[carried_rows] = True

    meters = np.where(has_prev, haversine_m(prev_lat, prev_lon, latitude, longitude), np.nan)
    elapsed_us = np.where(has_prev, time_us - prev_time, 0)
    hours = np.where(has_prev, elapsed_us / _US_PER_HOUR, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = meters / METERS_PER_NAUTICAL_MILE / hours

    # Time at sea, exact: a segmented running sum of int64 microseconds, reset at port and at a
    # track's first row, seeded with the carried value when the track continues.
    contribution = np.where(has_prev & ~at_port & ~prev_port, elapsed_us, 0)
    seed = np.zeros(n, dtype=np.int64)
    if carried_rows.any():
        carried_sea = carried.loc[track[carried_rows], "sea_time_us"].to_numpy(np.int64)
        seed[carried_rows] = np.where(at_port[carried_rows], 0, carried_sea)
    start = first | at_port
    increments = contribution + seed
    total = np.cumsum(increments)
    segment = np.cumsum(start) - 1
    base = (total - increments)[start]
    sea_us = total - base[segment]

    # Fishing: candidate and (predecessor or successor candidate), three-valued.
    cand_lo, cand_hi = _candidates(at_port, speed, parameters)
    prev_lo = np.where(first, False, np.roll(cand_lo, 1))
    prev_hi = np.where(first, True, np.roll(cand_hi, 1))
    if carried_rows.any():
        source = carried.loc[track[carried_rows]]
        state_lo, state_hi = _candidates(
            source["is_at_port"].to_numpy(bool), source["average_speed"].to_numpy(float), parameters
        )
        prev_lo[carried_rows] = state_lo
        prev_hi[carried_rows] = state_hi
    next_lo = np.where(last, False, np.roll(cand_lo, -1))
    next_hi = np.where(last, True, np.roll(cand_hi, -1))
    threshold_us = parameters.min_minutes_at_sea * 60_000_000
    fishing = _three_valued(
        cand_lo & (prev_lo | next_lo), cand_hi & (prev_hi | next_hi), sea_us > threshold_us
    )

    enriched = pd.DataFrame(
        {
            "id": batch["id"].to_numpy(),
            "is_at_port": at_port,
            "meters_from_previous_position": meters,
            "time_since_previous_position": hours,
            "average_speed": speed,
            "is_fishing": fishing,
            "time_emitting_at_sea": sea_us / _US_PER_HOUR,
        }
    )

    # The carried rows again, now that their successor is known.
    reemitted = pd.DataFrame(columns=list(ENRICHED_COLUMNS))
    if carried_rows.any():
        source = carried.loc[track[carried_rows]]
        own_lo, own_hi = _candidates(
            source["is_at_port"].to_numpy(bool), source["average_speed"].to_numpy(float), parameters
        )
        before = source["previous_candidate"].astype("boolean")
        before_lo = before.fillna(False).to_numpy(bool)
        before_hi = before.fillna(True).to_numpy(bool)
        reemitted = pd.DataFrame(
            {
                "id": source["id"].to_numpy(),
                **{name: source[name].to_numpy() for name in ENRICHED_COLUMNS[1:]},
            }
        )
        reemitted["is_fishing"] = _three_valued(
            own_lo & (before_lo | cand_lo[carried_rows]),
            own_hi & (before_hi | cand_hi[carried_rows]),
            source["sea_time_us"].to_numpy(np.int64) > threshold_us,
        )

    # New state: the last row of each batch track, with the candidacy of the row before it.
    previous = _three_valued(prev_lo, prev_hi, np.ones(n, dtype=bool))
    previous[first & ~carried_rows] = pd.NA
    state = batch.loc[last, [*TRACK_COLUMNS, "id", "datetime_utc", "latitude", "longitude"]]
    state = state.reset_index(drop=True)
    for name in ENRICHED_COLUMNS[1:]:
        state[name] = enriched.loc[last, name].to_numpy()
    state["sea_time_us"] = sea_us[last]
    state["previous_candidate"] = previous[last]
    return enriched, state, reemitted


def _three_valued(lo: np.ndarray, hi: np.ndarray, allowed: np.ndarray) -> pd.arrays.BooleanArray:
    """True where `lo`, NA where only `hi`, False elsewhere or where not `allowed`."""
    values = pd.array(lo, dtype="boolean")
    values[~lo & hi] = pd.NA
    values[~allowed] = False
    return values


def _typed_enriched(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[list(ENRICHED_COLUMNS)].copy()
    for name, dtype in ENRICHED_DTYPES.items():
        frame[name] = frame[name].astype(dtype)
    return frame.reset_index(drop=True)


def _typed_state(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [name for name in STATE_DTYPES if name not in frame.columns]
    if missing:
        raise ValueError(f"track state lacks columns {missing}")
    frame = frame[list(STATE_DTYPES)]
    if [str(dtype) for dtype in frame.dtypes] == list(STATE_DTYPES.values()):
        return frame.reset_index(drop=True)
    frame = frame.copy()
    for name, dtype in STATE_DTYPES.items():
        if dtype.startswith("datetime64"):
            frame[name] = pd.to_datetime(frame[name], utc=True).dt.as_unit("us")
        else:
            frame[name] = frame[name].astype(dtype)
    return frame.reset_index(drop=True)
