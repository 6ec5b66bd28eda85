"""Position alerts: which vessels have a position in the analysis window that passes every filter
of a specification.

Works on columns (numpy arrays taken from the Arrow read, no per-position Python objects):
strings (identifiers, flag states) are dictionary-encoded once, so each filter of each
specification is a lookup table indexed by a code; point-in-polygon runs once, on the union of
the surviving positions, against every zone some specification names (and the bathymetry bands);
each specification then reads its zones from per-position bit sets (one bit per specification and
zone layer) instead of re-scanning the (position, zone) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.alerts.pending import POSITION_ALERT, ProducedAlert, capped, vessel_key
from platform_assets.alerts.specifications import PositionAlertSpecification, Schedule
from platform_assets.alerts.zones import Membership, ZoneIndex

POSITION_COLUMNS = (
    "id",
    "internal_reference_number",
    "external_reference_number",
    "ircs",
    "vessel_name",
    "flag_state",
    "latitude",
    "longitude",
    "datetime_utc",
    "is_fishing",
)
"""Columns of enriched positions the position alerts read."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IDS = ("internal_reference_number", "ircs", "external_reference_number")
_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}

VESSEL_CONTEXT_COLUMNS = ("vessel_id", "district_code", "gears", "species")
"""Per vessel key: register id and district, gears on board [(gear, mesh)], species on board."""


@dataclass
class Vessels:
    """The distinct vessels of a positions frame: a code per position and one row per vessel."""

    codes: np.ndarray
    frame: pd.DataFrame
    """Index = code; columns: key, the three identifiers, vessel_name, flag_state."""
    rows: list[dict[str, Any]]
    """The frame's rows as dicts (row i = code i), for the per-alert loop."""


@dataclass
class PositionArrays:
    """The columns of a positions window that the evaluation uses, as numpy arrays."""

    ids: np.ndarray
    times_ns: np.ndarray
    """int64 nanoseconds since the epoch (UTC)."""
    fishing: np.ndarray
    """bool; an unknown `is_fishing` is False."""
    flag_codes: np.ndarray
    """Index into `flag_values` (-1 = no flag state)."""
    flag_values: np.ndarray
    longitude: np.ndarray
    latitude: np.ndarray
    vessels: Vessels

    def __len__(self) -> int:
        return len(self.ids)


def position_arrays(positions: pa.Table | pd.DataFrame) -> PositionArrays:
    """The columns of `POSITION_COLUMNS` (an Arrow table as the store reads it, or a DataFrame)
    as arrays, with vessels grouped by the identifier triple (CFR, IRCS, external marking)."""
    table = (
        positions
        if isinstance(positions, pa.Table)
        else pa.Table.from_pandas(positions[list(POSITION_COLUMNS)], preserve_index=False)
    )
    flag_codes, flag_values = _encode(table["flag_state"])
    times = table["datetime_utc"]
    if pa.types.is_timestamp(times.type):
        unit = _NS_PER_UNIT[times.type.unit]
        times_ns = _numpy(times.cast(pa.int64())).astype(np.int64) * unit
    else:  # an all-null or object column from an empty frame
        times_ns = np.zeros(len(table), np.int64)
    return PositionArrays(
        ids=_numpy(table["id"]),
        times_ns=times_ns,
        fishing=_numpy(pc.fill_null(table["is_fishing"].cast(pa.bool_()), False)).astype(bool),
        flag_codes=flag_codes,
        flag_values=flag_values,
        longitude=_numpy(table["longitude"].cast(pa.float64())),
        latitude=_numpy(table["latitude"].cast(pa.float64())),
        vessels=distinct_vessels(table),
    )


def _numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _encode(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Dictionary codes (-1 for null) and the distinct values of a string column."""
    column = column.cast(pa.string())
    encoded = column.combine_chunks().dictionary_encode() if len(column) else None
    if encoded is None:
        return np.empty(0, np.int64), np.empty(0, dtype=object)
    codes = _numpy(pc.fill_null(encoded.indices, -1)).astype(np.int64)
    return codes, np.array(encoded.dictionary.to_pylist(), dtype=object)


def distinct_vessels(table: pa.Table) -> Vessels:
    """Group positions by the identifier triple (CFR, IRCS, external marking) and name each group
    by its vessel key; a group's name and flag are its first non-null ones."""
    key = np.zeros(len(table), np.int64)
    values: dict[str, np.ndarray] = {}
    id_codes: dict[str, np.ndarray] = {}
    for name in _IDS:
        id_codes[name], values[name] = _encode(table[name])
        width = len(values[name]) + 1
        if int(key.max(initial=0)) >= (1 << 62) // width:  # keep the combined key in int64
            key = pd.factorize(key)[0].astype(np.int64)
        key = key * width + id_codes[name] + 1
    codes, _ = pd.factorize(key)  # vessel codes in order of first appearance
    codes = codes.astype(np.int64)
    count = int(codes.max(initial=-1)) + 1
    # codes appear in increasing order, so a group's first row is where their running max rises
    rises = codes[1:] > np.maximum.accumulate(codes)[:-1]
    first = np.flatnonzero(np.r_[True, rises]) if count else np.empty(0, np.int64)
    columns: dict[str, list[Any]] = {
        name: [None if c < 0 else values[name][c] for c in id_codes[name][first].tolist()]
        for name in _IDS
    }
    for name in ("vessel_name", "flag_state"):
        column = table[name].cast(pa.string())
        present = _numpy(pc.is_valid(column)).astype(bool)
        at = first.copy()
        if not present[first].all():  # some group starts without a value: its first non-null
            later = _first_rows(codes, present, count)
            at[~present[first]] = later[~present[first]]
        taken = column.take(pa.array(np.where(at < 0, 0, at))).to_pylist() if count else []
        columns[name] = [v if a >= 0 else None for v, a in zip(taken, at.tolist(), strict=True)]
    columns["key"] = [
        vessel_key(c, i, e)
        for c, i, e in zip(
            columns["internal_reference_number"],
            columns["ircs"],
            columns["external_reference_number"],
            strict=True,
        )
    ]
    frame = pd.DataFrame(
        columns, columns=[*_IDS, "vessel_name", "flag_state", "key"], index=range(count)
    )
    names = list(frame.columns)
    rows = [
        dict(zip(names, row, strict=True)) for row in zip(*(columns[n] for n in names), strict=True)
    ]
    return Vessels(codes, frame, rows)


def _first_rows(codes: np.ndarray, where: np.ndarray, count: int) -> np.ndarray:
    """Per code, the first row where `where` holds (-1 when none)."""
    n = len(codes)
    first = np.full(count, n, np.int64)
    rows = np.flatnonzero(where)
    np.minimum.at(first, codes[rows], rows)
    first[first == n] = -1
    return first


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def resolve_context(vessels: pd.DataFrame, context: pd.DataFrame) -> pd.DataFrame:
    """The vessel context row of each distinct vessel, looked up by CFR, then call sign, then
    external marking (the register or logbook may know a vessel by another identifier)."""
    columns = list(VESSEL_CONTEXT_COLUMNS)
    found = np.full(len(vessels), -1, np.int64)
    if len(context):
        for prefix, column in (
            ("CFR", "internal_reference_number"),
            ("IRCS", "ircs"),
            ("EXT", "external_reference_number"),
        ):
            keys = [f"{prefix}:{v}" if _none(v) else "" for v in vessels[column]]
            at = context.index.get_indexer(keys)
            found = np.where(found < 0, at, found)
    rows = context[columns].to_numpy(dtype=object)
    out = [rows[i].tolist() if i >= 0 else [None, None, [], []] for i in found.tolist()]
    return pd.DataFrame(out, index=vessels.index, columns=columns)


def vessel_context(register: pd.DataFrame, reports: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Per identifier key (CFR:/IRCS:/EXT:): register id, district, gears and species on board.

    `register`: cfr, ircs, external_immatriculation, vessel_id, district_code,
    declared_fishing_gears. `reports` (resolved logbook): cfr, ircs, external_identification,
    log_type, activity_datetime_utc, value (dict). Gears and species on board are those of the
    current trip: the last DEP at or before `now` and the FARs after it; the register's declared
    gears (without mesh) stand in when the logbook names none.
    """
    out: dict[str, dict[str, Any]] = {}

    def keys(cfr: Any, ircs: Any, ext: Any) -> list[str]:
        pairs = (("CFR", cfr), ("IRCS", ircs), ("EXT", ext))
        return [f"{p}:{v}" for p, v in pairs if isinstance(v, str) and v]

    for row in register.itertuples():
        entry = {
            "vessel_id": int(row.vessel_id),
            "district_code": _none(row.district_code),
            "gears": [(g, None) for g in (_as_list(row.declared_fishing_gears))],
            "species": [],
        }
        for key in keys(row.cfr, row.ircs, row.external_immatriculation):
            out.setdefault(key, entry)  # one shared entry: the logbook may use any identifier
    if len(reports):
        for ids, trip in _trips(reports, now):
            gears: list[tuple[str, float | None]] = []
            species: list[str] = []
            for log_type, value in zip(trip["log_type"], trip["value"], strict=True):
                _collect(log_type, value or {}, gears, species)
            trip_keys = keys(*ids)
            known = [out[k] for k in trip_keys if k in out]
            entry = (
                known[0]
                if known
                else {"vessel_id": None, "district_code": None, "gears": [], "species": []}
            )
            for key in trip_keys:
                out.setdefault(key, entry)
            if gears:
                entry["gears"] = list(dict.fromkeys(gears))
            entry["species"] = list(dict.fromkeys(species))
    frame = pd.DataFrame.from_dict(out, orient="index", columns=list(VESSEL_CONTEXT_COLUMNS))
    return frame


def _as_list(value: Any) -> list[Any]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return list(value)


def _trips(reports: pd.DataFrame, now: datetime) -> list[tuple[tuple[Any, Any, Any], pd.DataFrame]]:
    """Per vessel (identifier triple), its reports of the current trip."""
    frame = reports[reports["activity_datetime_utc"] <= pd.Timestamp(now)]
    frame = frame.sort_values("activity_datetime_utc", kind="stable")
    trips = []
    for ids, group in frame.groupby(["cfr", "ircs", "external_identification"], dropna=False):
        deps = np.flatnonzero((group["log_type"] == "DEP").to_numpy())
        start = deps[-1] if len(deps) else 0
        trips.append((tuple(_none(v) for v in ids), group.iloc[start:]))
    return trips


def _collect(log_type: str, value: dict[str, Any], gears: list, species: list) -> None:
    """Gears and species a DEP or FAR declares."""
    if log_type == "DEP":
        for gear in value.get("gearOnboard") or []:
            gears.append((gear.get("gear"), gear.get("mesh")))
        species.extend(s.get("species") for s in value.get("speciesOnboard") or [])
    elif log_type == "FAR":
        for haul in value.get("hauls") or []:
            if haul.get("gear"):
                gears.append((haul.get("gear"), haul.get("mesh")))
            species.extend(c.get("species") for c in haul.get("catches") or [])


def vessel_filter(spec: PositionAlertSpecification, context: pd.DataFrame) -> np.ndarray:
    """Which distinct vessels (rows of `context`, as from `resolve_context`) pass the register
    and logbook filters of a specification."""
    ok = np.ones(len(context), bool)
    if spec.vessel_ids:
        wanted = set(spec.vessel_ids)
        ok &= np.array(
            [v is not None and v == v and int(v) in wanted for v in context["vessel_id"]]
        )
    if spec.district_codes:
        ok &= context["district_code"].isin(spec.district_codes).to_numpy()
    if spec.gears:
        ok &= np.array(
            [
                any(f.matches(g, m) for f in spec.gears for g, m in gears)
                for gears in context["gears"]
            ],
            dtype=bool,
        )
    if spec.species:
        wanted_species = set(spec.species)
        ok &= np.array([bool(wanted_species & set(s)) for s in context["species"]], dtype=bool)
    return ok


def schedule_mask(schedule: Schedule, times: pd.DatetimeIndex) -> np.ndarray:
    """Which instants (UTC) fall in the schedule."""
    ok = np.ones(len(times), bool)
    if schedule.weekdays:
        ok &= np.isin(times.weekday, schedule.weekdays)
    if schedule.periods:
        in_period = np.zeros(len(times), bool)
        values = times.asi8
        if schedule.repeat_each_year:
            # compare (month, day, time of day) as one number, wrapping over the new year
            stamp = _year_position(times)
            for period in schedule.periods:
                start = _year_position(pd.DatetimeIndex([period.start]))[0]
                end = _year_position(pd.DatetimeIndex([period.end]))[0]
                if period.end - period.start >= timedelta(days=365):
                    in_period[:] = True
                elif start <= end:
                    in_period |= (stamp >= start) & (stamp < end)
                else:
                    in_period |= (stamp >= start) | (stamp < end)
        else:
            for period in schedule.periods:
                start_ns = pd.Timestamp(period.start).value
                end_ns = pd.Timestamp(period.end).value
                in_period |= (values >= start_ns) & (values < end_ns)
        ok &= in_period
    return ok


def _year_position(times: pd.DatetimeIndex) -> np.ndarray:
    """Month, day and time of day packed into one sortable integer (seconds)."""
    t = times.tz_convert("UTC") if times.tz is not None else times
    return (
        (np.asarray(t.month) * 32 + np.asarray(t.day)) * 86400
        + np.asarray(t.hour) * 3600
        + np.asarray(t.minute) * 60
        + np.asarray(t.second)
    ).astype(np.int64)


@dataclass
class EvaluationStats:
    """Sizes seen while evaluating, for logs and metadata."""

    positions: int = 0
    vessels: int = 0
    geometry_candidates: int = 0
    zone_pairs: int = 0


def evaluate_specifications(
    specs: Sequence[PositionAlertSpecification],
    positions: pa.Table | pd.DataFrame | PositionArrays,
    context: pd.DataFrame,
    zones: ZoneIndex,
    now: datetime,
) -> tuple[list[ProducedAlert], EvaluationStats]:
    """One alert per (active specification, vessel) with a matching position in the window.

    `positions` has `POSITION_COLUMNS` (an Arrow table, or a DataFrame with datetime_utc
    tz-aware UTC); `context` is indexed by identifier key as `vessel_context` returns it. The
    episode starts on the UTC day of the first matching position.
    """
    if not isinstance(positions, PositionArrays):
        positions = position_arrays(positions)
    stats = EvaluationStats(positions=len(positions))
    active = [s for s in specs if s.is_active]
    if not active or len(positions) == 0:
        return [], stats
    vessels = positions.vessels
    stats.vessels = len(vessels.rows)
    resolved = (
        resolve_context(vessels.frame, context)
        if any(s.uses_vessel_context for s in active)
        else None
    )
    masks = [_plain_mask(spec, positions, resolved, now) for spec in active]
    geometric = [i for i, s in enumerate(active) if s.uses_geometry]
    located = _apply_geometry(active, masks, geometric, positions, zones, stats)
    alerts: list[ProducedAlert] = []
    evidence = _zone_evidence(active, masks, positions, zones, located)
    for spec, mask, matched_zones in zip(active, masks, evidence, strict=True):
        alerts.extend(_spec_alerts(spec, mask, positions, matched_zones))
    return alerts, stats


def _plain_mask(
    spec: PositionAlertSpecification,
    positions: PositionArrays,
    resolved: pd.DataFrame | None,
    now: datetime,
) -> np.ndarray:
    """The positions passing a specification's filters that need no geometry: window, fishing,
    flag state, register and logbook, schedule."""
    times_ns = positions.times_ns
    now_ns = pd.Timestamp(now).value
    start_ns = now_ns - int(spec.track_analysis_depth_hours * 3600e9)
    mask = (times_ns > start_ns) & (times_ns <= now_ns)
    if spec.only_fishing_positions:
        mask &= positions.fishing
    if spec.flag_states:
        mask &= _lookup(np.isin(positions.flag_values, spec.flag_states), positions.flag_codes)
    if spec.uses_vessel_context:
        assert resolved is not None
        mask &= vessel_filter(spec, resolved)[positions.vessels.codes]
    if not spec.schedule.is_always:
        idx = np.flatnonzero(mask)
        times = pd.DatetimeIndex(times_ns[idx].view("datetime64[ns]")).tz_localize(UTC)
        mask[idx] = schedule_mask(spec.schedule, times)
    return mask


def _lookup(allowed: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """`allowed[code]` per position, False for code -1 (null)."""
    table = np.append(np.asarray(allowed, bool), False)  # index -1 reads the trailing False
    return table[codes]


def _apply_geometry(
    active: list[PositionAlertSpecification],
    masks: list[np.ndarray],
    geometric: list[int],
    positions: PositionArrays,
    zones: ZoneIndex,
    stats: EvaluationStats,
) -> tuple[np.ndarray, Membership | None]:
    """Narrow the masks of the geometric specifications to positions in their zones (inside
    one zone of each layer they name) and deep enough, with one point-in-polygon pass; returns
    the candidate positions and where they are."""
    n = len(positions)
    if not geometric:
        return np.empty(0, np.int64), None
    candidates = np.flatnonzero(np.logical_or.reduce([masks[i] for i in geometric]))
    stats.geometry_candidates = len(candidates)
    wanted = np.zeros(len(zones), bool)
    for i in geometric:
        wanted[zones.indices(active[i].zones)] = True
    with_depth = any(active[i].min_depth_m is not None for i in geometric)
    if with_depth:
        wanted |= zones.layers == "bathymetry"
    where = zones.locate(
        positions.longitude[candidates], positions.latitude[candidates], np.flatnonzero(wanted)
    )
    stats.zone_pairs = where.count()
    # one bit per (specification, layer): set on a position when it is in one of those zones
    slots = [
        (i, in_layer)
        for i in geometric
        for in_layer in _zones_by_layer(zones, zones.indices(active[i].zones))
    ]
    words = max(1, -(-len(slots) // 64))
    zone_bits = np.zeros((len(zones), words), np.uint64)
    needed = np.zeros((len(active), words), np.uint64)
    for slot, (i, in_layer) in enumerate(slots):
        bit = np.uint64(1) << np.uint64(slot % 64)
        zone_bits[in_layer, slot // 64] |= bit
        needed[i, slot // 64] |= bit
    cells = int(max(where.cell.max(initial=-1), where.whole_cell.max(initial=-1))) + 2
    cell = np.where(where.cell >= 0, where.cell, cells - 1)  # the last cell: NaN, in no zone
    bits = []
    for word in range(words if slots else 0):
        per_cell = np.zeros(cells, np.uint64)
        np.bitwise_or.at(per_cell, where.whole_cell, zone_bits[where.whole_zone, word])
        column = per_cell[cell]
        np.bitwise_or.at(column, where.point_position, zone_bits[where.point_zone, word])
        bits.append(column)
    depth = None
    if with_depth:
        per_cell_depth = np.full(cells, np.nan)
        deep = zones.layers[where.whole_zone] == "bathymetry"
        np.fmax.at(per_cell_depth, where.whole_cell[deep], zones.depths[where.whole_zone[deep]])
        depth = per_cell_depth[cell]
        deep = zones.layers[where.point_zone] == "bathymetry"
        np.fmax.at(depth, where.point_position[deep], zones.depths[where.point_zone[deep]])
    for i in geometric:
        keep = np.ones(len(candidates), bool)
        spec = active[i]
        if spec.min_depth_m is not None:
            assert depth is not None
            keep &= depth >= spec.min_depth_m
        for word, column in enumerate(bits):
            need = needed[i, word]
            if need:
                keep &= (column & need) == need
        narrowed = np.zeros(n, bool)
        narrowed[candidates[keep]] = True
        masks[i] &= narrowed
    return candidates, where


def _zones_by_layer(zones: ZoneIndex, indices: np.ndarray) -> list[np.ndarray]:
    """A specification's zone indices, one array per layer (ANDed across layers)."""
    layers = zones.layers[indices]
    return [indices[layers == layer] for layer in sorted(set(layers.tolist()))]


def _zone_evidence(
    active: list[PositionAlertSpecification],
    masks: list[np.ndarray],
    positions: PositionArrays,
    zones: ZoneIndex,
    located: tuple[np.ndarray, Membership | None],
) -> list[dict[int, list[str]]]:
    """Per specification, the zones (among its own) each vessel's matching positions were in."""
    out: list[dict[int, list[str]]] = [{} for _ in active]
    with_zones = [i for i, s in enumerate(active) if s.zones]
    candidates, where = located
    if not with_zones or where is None:
        return out
    matched = np.logical_or.reduce([masks[i] for i in with_zones])[candidates]
    local, pair_zone = where.pairs(np.flatnonzero(matched))  # matched positions only
    pair_position = candidates[local]
    width = max(len(zones), 1)
    for i in with_zones:
        own = np.zeros(len(zones), bool)
        own[zones.indices(active[i].zones)] = True
        hit = own[pair_zone] & masks[i][pair_position]
        combined = np.unique(positions.vessels.codes[pair_position[hit]] * width + pair_zone[hit])
        for code, zone in zip(
            (combined // width).tolist(), (combined % width).tolist(), strict=True
        ):
            out[i].setdefault(code, []).append(str(zones.names[zone]))
    return out


def _spec_alerts(
    spec: PositionAlertSpecification,
    mask: np.ndarray,
    positions: PositionArrays,
    matched_zones: dict[int, list[str]],
) -> list[ProducedAlert]:
    vessels, ids, times_ns = positions.vessels, positions.ids, positions.times_ns
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return []
    idx = idx[np.lexsort((times_ns[idx], vessels.codes[idx]))]
    codes = vessels.codes[idx]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.r_[0, bounds]
    ends = np.r_[bounds, len(idx)]
    rows = vessels.rows
    matched_ids = ids[idx].tolist()
    matched_times = times_ns[idx].tolist()
    alerts = []
    for start, end, code in zip(
        starts.tolist(), ends.tolist(), codes[starts].tolist(), strict=True
    ):
        row = rows[code]
        if row["key"] is None:
            continue  # a position without any identifier cannot be attributed
        first = _EPOCH + timedelta(microseconds=matched_times[start] // 1000)
        last = _EPOCH + timedelta(microseconds=matched_times[end - 1] // 1000)
        zone_names = sorted(matched_zones.get(code, []))
        group_ids = matched_ids[start:end]
        alerts.append(
            ProducedAlert(
                alert_type=POSITION_ALERT,
                vessel_key=row["key"],
                episode_start=first.replace(hour=0, minute=0, second=0, microsecond=0),
                triggered_at=last,
                title=spec.name,
                specification_id=spec.id,
                internal_reference_number=row["internal_reference_number"],
                external_reference_number=row["external_reference_number"],
                ircs=row["ircs"],
                vessel_name=row["vessel_name"],
                flag_state=row["flag_state"],
                evidence={
                    "position_ids": capped(group_ids),
                    "positions": len(group_ids),
                    "zones": zone_names,
                    "first_position_utc": first.isoformat(),
                    "last_position_utc": last.isoformat(),
                },
                details={
                    "specification": spec.name,
                    "offence_code": spec.offence_code,
                    "threat": spec.threat,
                    "description": spec.description,
                },
            )
        )
    return alerts
