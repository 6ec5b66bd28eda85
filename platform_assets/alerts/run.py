"""One run of each alert family: read its inputs, compute, reconcile, write. No Dagster here (the
assets, the benchmark and the demo call these); the caller commits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import psycopg

from platform_assets.alerts import store
from platform_assets.alerts.beacons import BeaconSettings, beacon_alerts, plan_beacons
from platform_assets.alerts.missing_declarations import (
    MissingDepSettings,
    MissingFarSettings,
    dep_scope,
    dep_window,
    far_days_judged,
    far_scope,
    missing_dep_alerts,
    missing_far_alerts,
)
from platform_assets.alerts.pending import (
    POSITION_ALERT,
    SILENT_BEACON,
    ProducedAlert,
    Scope,
    reconcile,
)
from platform_assets.alerts.position_alerts import (
    POSITION_COLUMNS,
    VESSEL_CONTEXT_COLUMNS,
    evaluate_specifications,
    position_arrays,
    vessel_context,
)
from platform_assets.alerts.zones import ZoneIndex

log = logging.getLogger(__name__)

TRIP_LOOKBACK_DAYS = 15
"""How far back the logbook is read to find the current trip (its DEP) of a vessel."""


@dataclass
class FamilyResult:
    """What a family run did: counts for metadata, timings, errors to report."""

    alert_type: str
    counts: dict[str, int] = field(default_factory=dict)
    produced: int = 0
    inputs: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _write(
    conn: psycopg.Connection,
    produced: list[ProducedAlert],
    scope: Scope,
    now: datetime,
    result: FamilyResult,
) -> None:
    stored = store.read_stored(conn, scope, produced)
    plan = reconcile(produced, stored, store.read_silences(conn, now), scope, now)
    result.counts = store.apply_plan(conn, plan, now)
    result.produced = len(produced)


def run_position_alerts(
    conn: psycopg.Connection, adbc: Any, now: datetime, cell_degrees: float = 0.05
) -> FamilyResult:
    """Evaluate every active specification over its window of positions."""
    result = FamilyResult(POSITION_ALERT)
    clock = time.perf_counter()
    specs, result.errors = store.read_specifications(conn)
    active = [s for s in specs if s.is_active]
    scope = Scope(POSITION_ALERT, frozenset(s.id for s in specs if s.id is not None))
    if not active:
        _write(conn, [], scope, now, result)
        return result
    depth = max(s.track_analysis_depth_hours for s in active)
    positions = position_arrays(
        store.read_position_window(
            adbc,
            now - timedelta(hours=depth),
            now,
            POSITION_COLUMNS,
            fishing_only=all(s.only_fishing_positions for s in active),
        )
    )
    result.seconds["read_positions"] = time.perf_counter() - clock
    clock = time.perf_counter()
    names = sorted({n for s in active for n in s.zones})
    zones = store.read_zones(conn) if names or any(s.min_depth_m for s in active) else []
    known = {z.name for z in zones}
    usable = []
    for spec in active:
        missing = [n for n in spec.zones if n not in known]
        if missing:
            result.errors.append(f"specification {spec.name!r}: unknown zone(s) {missing}")
        else:
            usable.append(spec)
    if any(s.uses_vessel_context for s in usable):
        register = store.read_register(conn)
        reports = store.read_reports(
            conn, ("DEP", "FAR"), now - timedelta(days=TRIP_LOOKBACK_DAYS), now, with_value=True
        )
        context = vessel_context(register, reports, now)
    else:
        context = pd.DataFrame(columns=list(VESSEL_CONTEXT_COLUMNS))
    result.seconds["read_context"] = time.perf_counter() - clock
    clock = time.perf_counter()
    produced, stats = evaluate_specifications(
        usable, positions, context, ZoneIndex(zones, cell_degrees), now
    )
    result.seconds["evaluate"] = time.perf_counter() - clock
    result.inputs = {
        "positions": stats.positions,
        "vessels": stats.vessels,
        "specifications": len(usable),
        "zones": len(zones),
        "geometry_candidates": stats.geometry_candidates,
        "zone_pairs": stats.zone_pairs,
    }
    clock = time.perf_counter()
    _write(conn, produced, scope, now, result)
    result.seconds["write"] = time.perf_counter() - clock
    return result


def run_missing_far(
    conn: psycopg.Connection, adbc: Any, now: datetime, settings: MissingFarSettings
) -> FamilyResult:
    """Fishing days without a FAR over the judged days."""
    result = FamilyResult("MISSING_FAR")
    days = far_days_judged(now, settings)
    start, end = days[0], days[-1] + timedelta(days=1)
    positions = store.read_positions(
        adbc, start - timedelta(microseconds=1), end, fishing_only=True
    )
    reports = store.read_reports(conn, ("FAR",), start, end)
    result.inputs = {"fishing_positions": len(positions), "far_reports": len(reports)}
    produced = missing_far_alerts(positions, reports, now, settings)
    _write(conn, produced, far_scope(now, settings), now, result)
    return result


def run_missing_dep(
    conn: psycopg.Connection, adbc: Any, now: datetime, settings: MissingDepSettings
) -> FamilyResult:
    """Departures from port without a DEP within the tolerance."""
    result = FamilyResult("MISSING_DEP")
    start, end = dep_window(now, settings)
    # positions a little before the window (the at-port one) and after it (the ones at sea)
    positions = store.read_positions(adbc, start - timedelta(hours=24), now)
    tolerance = timedelta(hours=settings.tolerance_hours)
    reports = store.read_reports(conn, ("DEP",), start - tolerance, end + 2 * tolerance)
    result.inputs = {"positions": len(positions), "dep_reports": len(reports)}
    produced = missing_dep_alerts(positions, reports, now, settings)
    _write(conn, produced, dep_scope(now, settings), now, result)
    return result


def run_beacons(conn: psycopg.Connection, now: datetime, settings: BeaconSettings) -> FamilyResult:
    """Open, move and resolve beacon malfunctions; one SILENT_BEACON alert per open one."""
    result = FamilyResult(SILENT_BEACON)
    last = store.read_last_positions(conn)
    plan = plan_beacons(last, store.read_open_malfunctions(conn), now, settings)
    beacon_counts = store.apply_beacon_plan(conn, plan, now)
    produced = beacon_alerts(store.read_open_malfunction_rows(conn), now)
    _write(conn, produced, Scope(SILENT_BEACON), now, result)
    result.inputs = {
        "last_positions": len(last),
        **{f"malfunctions_{k}": v for k, v in beacon_counts.items()},
    }
    return result
