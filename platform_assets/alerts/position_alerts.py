"""Position alerts: which vessels have a position in the analysis window that passes every filter
of a specification.

Works on arrays: the cheap filters (window, fishing, flag, vessel, schedule) run first for every
specification; point-in-polygon then runs once, on the union of the surviving positions, against
the zones any specification names; each specification finally reads its zones from those pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from platform_assets.alerts.pending import POSITION_ALERT, ProducedAlert, capped, vessel_key
from platform_assets.alerts.specifications import PositionAlertSpecification, Schedule
from platform_assets.alerts.zones import ZoneIndex

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


def distinct_vessels(positions: pd.DataFrame) -> Vessels:
    """Group positions by the identifier triple (CFR, IRCS, external marking) and name each group
    by its vessel key."""
    ids = ["internal_reference_number", "ircs", "external_reference_number"]
    grouped = positions.groupby(ids, dropna=False, sort=False)
    codes = grouped.ngroup().to_numpy()
    first = positions[[*ids, "vessel_name", "flag_state"]].groupby(codes, sort=True).first()
    first["key"] = [
        vessel_key(c, i, e)
        for c, i, e in zip(
            first["internal_reference_number"],
            first["ircs"],
            first["external_reference_number"],
            strict=True,
        )
    ]
    rows = [{k: _none(v) for k, v in row.items()} for row in first.to_dict("records")]
    return Vessels(codes, first, rows)


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def resolve_context(vessels: pd.DataFrame, context: pd.DataFrame) -> pd.DataFrame:
    """The vessel context row of each distinct vessel, looked up by CFR, then call sign, then
    external marking (the register or logbook may know a vessel by another identifier)."""
    rows: list[dict[str, Any]] = []
    for row in vessels.itertuples():
        found: dict[str, Any] = {
            "vessel_id": None,
            "district_code": None,
            "gears": [],
            "species": [],
        }
        for prefix, value in (
            ("CFR", row.internal_reference_number),
            ("IRCS", row.ircs),
            ("EXT", row.external_reference_number),
        ):
            value = _none(value)
            key = f"{prefix}:{value}" if value else None
            if key is not None and key in context.index:
                found = context.loc[key].to_dict()
                break
        rows.append(found)
    return pd.DataFrame(rows, index=vessels.index, columns=list(VESSEL_CONTEXT_COLUMNS))


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
    positions: pd.DataFrame,
    context: pd.DataFrame,
    zones: ZoneIndex,
    now: datetime,
) -> tuple[list[ProducedAlert], EvaluationStats]:
    """One alert per (active specification, vessel) with a matching position in the window.

    `positions` has `POSITION_COLUMNS` (datetime_utc tz-aware UTC); `context` is indexed by
    identifier key as `vessel_context` returns it. The episode starts on the UTC day of the first
    matching position.
    """
    stats = EvaluationStats(positions=len(positions))
    active = [s for s in specs if s.is_active]
    if not active or positions.empty:
        return [], stats
    vessels = distinct_vessels(positions)
    stats.vessels = len(vessels.frame)
    resolved = resolve_context(vessels.frame, context)
    times_ns = _ns(positions["datetime_utc"])
    fishing = positions["is_fishing"].fillna(False).to_numpy(dtype=bool)
    flag_codes, flag_values = pd.factorize(positions["flag_state"])
    now_ns = pd.Timestamp(now).value

    masks: list[np.ndarray] = []
    for spec in active:
        start_ns = now_ns - int(spec.track_analysis_depth_hours * 3600e9)
        mask = (times_ns > start_ns) & (times_ns <= now_ns)
        if spec.only_fishing_positions:
            mask &= fishing
        if spec.flag_states:
            wanted = np.flatnonzero(np.isin(flag_values.to_numpy(dtype=object), spec.flag_states))
            mask &= np.isin(flag_codes, wanted)
        if spec.uses_vessel_context:
            allowed = np.flatnonzero(vessel_filter(spec, resolved))
            mask &= np.isin(vessels.codes, allowed)
        if not spec.schedule.is_always:
            idx = np.flatnonzero(mask)
            times = pd.DatetimeIndex(pd.to_datetime(times_ns[idx], utc=True))
            mask[idx] = schedule_mask(spec.schedule, times)
        masks.append(mask)

    # point-in-polygon once, for every position some geometric specification still considers
    geometric = [i for i, s in enumerate(active) if s.uses_geometry]
    pair_position = pair_zone = np.empty(0, np.int64)
    depth = np.full(0, np.nan)
    if geometric:
        candidates = np.flatnonzero(np.logical_or.reduce([masks[i] for i in geometric]))
        stats.geometry_candidates = len(candidates)
        lon = positions["longitude"].to_numpy(dtype=float)[candidates]
        lat = positions["latitude"].to_numpy(dtype=float)[candidates]
        named = sorted({n for i in geometric for n in active[i].zones})
        if named:
            local, pair_zone = zones.membership(lon, lat, zones.indices(named))
            pair_position = candidates[local]
            stats.zone_pairs = len(local)
        if any(active[i].min_depth_m is not None for i in geometric):
            depth = np.full(len(positions), np.nan)
            depth[candidates] = zones.depth(lon, lat)

    alerts: list[ProducedAlert] = []
    ids = positions["id"].to_numpy()
    for spec, mask in zip(active, masks, strict=True):
        matched_zones: dict[int, list[str]] = {}
        if spec.min_depth_m is not None:
            mask = mask & (depth >= spec.min_depth_m)
        if spec.zones:
            wanted_zones = zones.indices(spec.zones)
            for layer in sorted({zones.layers[z] for z in wanted_zones}):
                in_layer = wanted_zones[zones.layers[wanted_zones] == layer]
                hit = np.isin(pair_zone, in_layer)
                layer_mask = np.zeros(len(positions), bool)
                layer_mask[pair_position[hit]] = True
                mask = mask & layer_mask
            hit = np.isin(pair_zone, wanted_zones) & mask[pair_position]
            # the zones each vessel's matching positions were in (evidence), vectorised
            width = max(len(zones), 1)
            combined = np.unique(vessels.codes[pair_position[hit]] * width + pair_zone[hit])
            for code, zone in zip(combined // width, combined % width, strict=True):
                matched_zones.setdefault(int(code), []).append(str(zones.names[zone]))
        alerts.extend(_spec_alerts(spec, mask, vessels, ids, times_ns, matched_zones))
    return alerts, stats


def _ns(series: pd.Series) -> np.ndarray:
    """Datetimes as int64 nanoseconds since the epoch (UTC)."""
    values = pd.DatetimeIndex(pd.to_datetime(series, utc=True))
    return values.as_unit("ns").asi8


def _spec_alerts(
    spec: PositionAlertSpecification,
    mask: np.ndarray,
    vessels: Vessels,
    ids: np.ndarray,
    times_ns: np.ndarray,
    matched_zones: dict[int, list[str]],
) -> list[ProducedAlert]:
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
