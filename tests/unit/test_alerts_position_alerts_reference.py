"""The vectorised position alerts against a position-by-position reference, on generated fleets,
zones and specifications (window, fishing, flags, weekdays, zones ANDed across layers, depth)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_assets.alerts.pending import capped, vessel_key
from platform_assets.alerts.position_alerts import POSITION_COLUMNS as COLUMNS
from platform_assets.alerts.position_alerts import evaluate_specifications
from platform_assets.alerts.specifications import PositionAlertSpecification, Schedule
from platform_assets.alerts.zones import Zone, ZoneIndex

from .test_alerts_helpers import NOW, no_context

LAYERS = ("eez", "regulatory", "fao_area")
CFRS = [None, "", "CFR1", "CFR2", "CFR3"]
IRCS = [None, "IRC1", "IRC2"]
FLAGS = [None, "FR", "ES", "GB"]


def _zones(rng: np.random.Generator) -> list[Zone]:
    zones = []
    for i in range(int(rng.integers(1, 9))):
        cx, cy, r = rng.uniform(-5, -1), rng.uniform(45, 48), rng.uniform(0.05, 1.2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 8))
        ring = np.c_[cx + r * np.cos(angles), cy + r * np.sin(angles) * rng.uniform(0.3, 1, 8)]
        geometry = shapely.make_valid(shapely.Polygon(ring))
        if geometry.geom_type in ("Polygon", "MultiPolygon") and not geometry.is_empty:
            zones.append(Zone(f"z{i}", LAYERS[i % 3], geometry))
    zones.append(Zone("deep 100", "bathymetry", shapely.box(-6, 44, -3, 49), 100))
    zones.append(Zone("deep 500", "bathymetry", shapely.box(-6, 44, -4.5, 49), 500))
    return zones


def _positions(rng: np.random.Generator, n: int) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        rows.append(
            {
                "id": 1000 + i,
                "internal_reference_number": CFRS[rng.integers(len(CFRS))],
                "external_reference_number": None,
                "ircs": IRCS[rng.integers(len(IRCS))],
                "vessel_name": None if rng.random() < 0.2 else f"V{rng.integers(3)}",
                "flag_state": FLAGS[rng.integers(len(FLAGS))],
                "latitude": np.nan if rng.random() < 0.03 else rng.uniform(44.5, 48.5),
                "longitude": rng.uniform(-5.5, -0.5),
                # whole minutes, so ties in time happen and the order must still agree
                "datetime_utc": NOW - timedelta(minutes=int(rng.integers(-60, 30 * 60)) // 7 * 7),
                "is_fishing": [None, True, False][rng.integers(3)],
                "is_at_port": False,
            }
        )
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "is_at_port"])
    frame["datetime_utc"] = pd.to_datetime(frame["datetime_utc"], utc=True)
    frame["is_fishing"] = frame["is_fishing"].astype("boolean")
    return frame


def _specs(rng: np.random.Generator, zones: list[Zone]) -> list[PositionAlertSpecification]:
    names = [z.name for z in zones if z.layer != "bathymetry"]
    specs = []
    for i in range(int(rng.integers(1, 5))):
        chosen = [str(n) for n in rng.choice(names, int(rng.integers(0, len(names) + 1)), False)]
        specs.append(
            PositionAlertSpecification(
                id=i + 1,
                name=f"spec {i}",
                zones=chosen,
                only_fishing_positions=bool(rng.random() < 0.5),
                track_analysis_depth_hours=float(rng.choice([3, 12, 24])),
                flag_states=[] if rng.random() < 0.5 else ["FR", "ES"],
                min_depth_m=None if rng.random() < 0.6 else float(rng.choice([50, 300])),
                schedule=Schedule(weekdays=[] if rng.random() < 0.7 else [1, 2]),
            )
        )
    return specs


def _reference(
    specs: list[PositionAlertSpecification], frame: pd.DataFrame, zones: list[Zone]
) -> list[tuple[Any, ...]]:
    by_name = {z.name: z for z in zones}
    # a vessel's name and flag: the first ones known in the window (in row order)
    known: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in frame.itertuples():
        ids = (row.internal_reference_number, row.ircs, row.external_reference_number)
        seen = known.setdefault(ids, {"vessel_name": None, "flag_state": None})
        for field in seen:
            if seen[field] is None and isinstance(getattr(row, field), str):
                seen[field] = getattr(row, field)
    out = []
    for spec in specs:
        needed = {by_name[n].layer for n in spec.zones}
        groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for order, row in enumerate(frame.itertuples()):
            t = row.datetime_utc
            if not NOW - timedelta(hours=spec.track_analysis_depth_hours) < t <= NOW:
                continue
            fishing = not pd.isna(row.is_fishing) and bool(row.is_fishing)
            if spec.only_fishing_positions and not fishing:
                continue
            if spec.flag_states and row.flag_state not in spec.flag_states:
                continue
            if spec.schedule.weekdays and t.weekday() not in spec.schedule.weekdays:
                continue
            point = shapely.Point(row.longitude, row.latitude)
            inside = {n for n in spec.zones if by_name[n].geometry.contains(point)}
            if needed - {by_name[n].layer for n in inside}:
                continue
            if spec.min_depth_m is not None:
                depths = [
                    z.depth_m
                    for z in zones
                    if z.layer == "bathymetry" and z.depth_m and z.geometry.contains(point)
                ]
                if not depths or max(depths) < spec.min_depth_m:
                    continue
            ids = (row.internal_reference_number, row.ircs, row.external_reference_number)
            groups.setdefault(ids, []).append((t, order, row.id, inside))
        for (cfr, ircs, ext), rows in groups.items():
            key = vessel_key(cfr, ircs, ext)
            if key is None:
                continue
            rows.sort(key=lambda r: (r[0], r[1]))
            out.append(
                (
                    spec.id,
                    key,
                    tuple(capped([r[2] for r in rows])),
                    tuple(sorted(set().union(*(r[3] for r in rows)))),
                    rows[0][0].normalize().to_pydatetime(),
                    rows[-1][0].to_pydatetime(),
                    known[(cfr, ircs, ext)]["vessel_name"],
                    known[(cfr, ircs, ext)]["flag_state"],
                )
            )
    return sorted(out)


def _summary(alerts: list[Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            a.specification_id,
            a.vessel_key,
            tuple(a.evidence["position_ids"]),
            tuple(a.evidence["zones"]),
            a.episode_start,
            a.triggered_at,
            a.vessel_name,
            a.flag_state,
        )
        for a in alerts
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), n=st.integers(0, 250), cell=st.sampled_from([0.02, 0.3]))
def test_vectorised_alerts_equal_position_by_position_reference(
    seed: int, n: int, cell: float
) -> None:
    rng = np.random.default_rng(seed)
    zones = _zones(rng)
    frame = _positions(rng, n)
    specs = _specs(rng, zones)
    alerts, _ = evaluate_specifications(
        specs, frame, no_context(), ZoneIndex(zones, cell_degrees=cell), NOW
    )
    assert _summary(alerts) == _reference(specs, frame, zones)
    # the Arrow table the store reads gives the same alerts as the DataFrame
    table = pa.Table.from_pandas(frame, preserve_index=False)
    from_arrow, _ = evaluate_specifications(specs, table, no_context(), ZoneIndex(zones, cell), NOW)
    assert _summary(from_arrow) == _summary(alerts)
