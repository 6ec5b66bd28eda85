"""Missing logbook declarations, found by comparing positions with the resolved logbook.

- MISSING_FAR: a vessel fishing at sea (enough `is_fishing` positions outside port) on a UTC day
  without any fishing-activity report (FAR) dated that day. A day is judged once it is over and a
  grace period has passed (reports arrive late), for the last `lookback_days` days.
- MISSING_DEP: a vessel that left port (an at-port position followed by `min_sea_positions`
  positions at sea) without a departure declaration (DEP) dated within `tolerance_hours` of the
  departure. A departure is judged once the tolerance after it has passed.

A report matches a vessel when any identifier (CFR, call sign, external marking) is equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from platform_assets.alerts.pending import (
    MISSING_DEP,
    MISSING_FAR,
    ProducedAlert,
    Scope,
    capped,
    vessel_key,
)

REPORT_COLUMNS = (
    "report_id",
    "cfr",
    "ircs",
    "external_identification",
    "log_type",
    "activity_datetime_utc",
)
"""Columns of resolved logbook reports these checks read."""

_IDS = ("internal_reference_number", "ircs", "external_reference_number")


@dataclass(frozen=True)
class MissingFarSettings:
    """Thresholds of the MISSING_FAR check."""

    min_fishing_positions: int = 2
    grace_hours: float = 6.0
    lookback_days: int = 2


@dataclass(frozen=True)
class MissingDepSettings:
    """Thresholds of the MISSING_DEP check."""

    tolerance_hours: float = 4.0
    lookback_hours: float = 48.0
    min_sea_positions: int = 2


def _identifier_keys(cfr: Any, ircs: Any, ext: Any) -> list[str]:
    pairs = (("CFR", cfr), ("IRCS", ircs), ("EXT", ext))
    return [f"{p}:{v}" for p, v in pairs if isinstance(v, str) and v]


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def far_days_judged(now: datetime, settings: MissingFarSettings) -> list[datetime]:
    """The UTC days (midnights) this run judges: over for at least the grace period, at most
    `lookback_days` back."""
    last = (pd.Timestamp(now) - pd.Timedelta(hours=settings.grace_hours)).normalize()
    last -= pd.Timedelta(days=1)  # the day must be over: its end + grace <= now
    return [
        (last - pd.Timedelta(days=back)).to_pydatetime()
        for back in range(settings.lookback_days - 1, -1, -1)
    ]


def far_scope(now: datetime, settings: MissingFarSettings) -> Scope:
    """The stored MISSING_FAR alerts a run decides about."""
    days = far_days_judged(now, settings)
    return Scope(MISSING_FAR, episode_from=days[0], episode_to=days[-1])


def missing_far_alerts(
    positions: pd.DataFrame,
    reports: pd.DataFrame,
    now: datetime,
    settings: MissingFarSettings,
) -> list[ProducedAlert]:
    """One alert per (vessel, judged day) fishing at sea without a FAR that day.

    `positions`: id, identifiers, vessel_name, flag_state, datetime_utc, is_fishing, is_at_port.
    `reports`: `REPORT_COLUMNS` of the resolved logbook.
    """
    days = far_days_judged(now, settings)
    if positions.empty or not days:
        return []
    frame = positions[
        positions["is_fishing"].fillna(False).astype(bool)
        & ~positions["is_at_port"].fillna(False).astype(bool)
    ].copy()
    frame["day"] = pd.to_datetime(frame["datetime_utc"], utc=True).dt.normalize()
    judged = pd.DatetimeIndex(days).tz_convert("UTC") if days[0].tzinfo else pd.DatetimeIndex(days)
    frame = frame[frame["day"].isin(judged)]
    declared = _declared_days(reports, "FAR")
    alerts: list[ProducedAlert] = []
    for (cfr, ircs, ext, day), group in frame.groupby([*_IDS, "day"], dropna=False, sort=True):
        cfr, ircs, ext = _none(cfr), _none(ircs), _none(ext)
        key = vessel_key(cfr, ircs, ext)
        if key is None or len(group) < settings.min_fishing_positions:
            continue
        if any((k, day) in declared for k in _identifier_keys(cfr, ircs, ext)):
            continue
        group = group.sort_values(["datetime_utc", "id"])
        alerts.append(
            ProducedAlert(
                alert_type=MISSING_FAR,
                vessel_key=key,
                episode_start=day.to_pydatetime(),
                triggered_at=pd.Timestamp(group["datetime_utc"].iloc[-1]).to_pydatetime(),
                title=f"Fishing on {day.date()} without a FAR",
                internal_reference_number=cfr,
                external_reference_number=ext,
                ircs=ircs,
                vessel_name=_none(group["vessel_name"].iloc[0]),
                flag_state=_none(group["flag_state"].iloc[0]),
                evidence={
                    "position_ids": capped(int(i) for i in group["id"]),
                    "fishing_positions": len(group),
                    "day": str(day.date()),
                    "report_ids": [],
                },
                details={"min_fishing_positions": settings.min_fishing_positions},
            )
        )
    return alerts


def _declared_days(reports: pd.DataFrame, log_type: str) -> set[tuple[str, pd.Timestamp]]:
    """(identifier key, UTC day) of every report of a log type."""
    if reports.empty:
        return set()
    frame = reports[reports["log_type"] == log_type]
    days = pd.to_datetime(frame["activity_datetime_utc"], utc=True).dt.normalize()
    out: set[tuple[str, pd.Timestamp]] = set()
    for cfr, ircs, ext, day in zip(
        frame["cfr"], frame["ircs"], frame["external_identification"], days, strict=True
    ):
        if pd.isna(day):
            continue
        for key in _identifier_keys(cfr, ircs, ext):
            out.add((key, day))
    return out


def dep_window(now: datetime, settings: MissingDepSettings) -> tuple[datetime, datetime]:
    """Departures judged by a run: from `now - lookback` to `now - tolerance`."""
    return (
        now - timedelta(hours=settings.lookback_hours),
        now - timedelta(hours=settings.tolerance_hours),
    )


def dep_scope(now: datetime, settings: MissingDepSettings) -> Scope:
    """The stored MISSING_DEP alerts a run decides about."""
    start, end = dep_window(now, settings)
    return Scope(MISSING_DEP, episode_from=start, episode_to=end)


def departures(positions: pd.DataFrame, min_sea_positions: int) -> pd.DataFrame:
    """Port departures: per track (identifier triple, in time then id order) an at-port position
    followed by at least `min_sea_positions` positions not at port. Columns: the identifiers,
    vessel_name, flag_state, departure_datetime_utc (first position at sea), port_position_id,
    sea_position_ids."""
    rows: list[dict[str, Any]] = []
    if positions.empty:
        return pd.DataFrame(rows)
    frame = positions.sort_values(["datetime_utc", "id"], kind="stable")
    for ids, track in frame.groupby(list(_IDS), dropna=False, sort=False):
        at_port = track["is_at_port"].fillna(False).to_numpy(dtype=bool)
        position_ids = track["id"].to_numpy()
        times = track["datetime_utc"].to_numpy()
        for i in np.flatnonzero(at_port[:-1] & ~at_port[1:]):
            sea = at_port[i + 1 : i + 1 + min_sea_positions]
            if len(sea) < min_sea_positions or sea.any():
                continue
            rows.append(
                {
                    "internal_reference_number": _none(ids[0]),
                    "ircs": _none(ids[1]),
                    "external_reference_number": _none(ids[2]),
                    "vessel_name": _none(track["vessel_name"].iloc[i]),
                    "flag_state": _none(track["flag_state"].iloc[i]),
                    "departure_datetime_utc": pd.Timestamp(times[i + 1], tz=UTC)
                    if pd.Timestamp(times[i + 1]).tzinfo is None
                    else pd.Timestamp(times[i + 1]),
                    "port_position_id": int(position_ids[i]),
                    "sea_position_ids": [
                        int(p) for p in position_ids[i + 1 : i + 1 + min_sea_positions]
                    ],
                }
            )
    return pd.DataFrame(rows)


def missing_dep_alerts(
    positions: pd.DataFrame,
    reports: pd.DataFrame,
    now: datetime,
    settings: MissingDepSettings,
) -> list[ProducedAlert]:
    """One alert per judged departure without a DEP dated within the tolerance of it."""
    found = departures(positions, settings.min_sea_positions)
    if found.empty:
        return []
    start, end = dep_window(now, settings)
    found = found[
        (found["departure_datetime_utc"] >= pd.Timestamp(start))
        & (found["departure_datetime_utc"] <= pd.Timestamp(end))
    ]
    deps = _dep_times(reports)
    tolerance = pd.Timedelta(hours=settings.tolerance_hours)
    alerts: list[ProducedAlert] = []
    for row in found.itertuples(index=False):
        cfr, ircs, ext = row.internal_reference_number, row.ircs, row.external_reference_number
        key = vessel_key(cfr, ircs, ext)
        if key is None:
            continue
        when = row.departure_datetime_utc
        if any(
            abs(t - when) <= tolerance
            for k in _identifier_keys(cfr, ircs, ext)
            for t in deps.get(k, ())
        ):
            continue
        alerts.append(
            ProducedAlert(
                alert_type=MISSING_DEP,
                vessel_key=key,
                episode_start=when.to_pydatetime(),
                triggered_at=when.to_pydatetime(),
                title=f"Left port at {when:%Y-%m-%d %H:%M} UTC without a DEP",
                internal_reference_number=cfr,
                external_reference_number=ext,
                ircs=ircs,
                vessel_name=row.vessel_name,
                flag_state=row.flag_state,
                evidence={
                    "position_ids": [row.port_position_id, *row.sea_position_ids],
                    "departure_utc": when.isoformat(),
                    "report_ids": [],
                },
                details={"tolerance_hours": settings.tolerance_hours},
            )
        )
    return alerts


def _dep_times(reports: pd.DataFrame) -> dict[str, list[pd.Timestamp]]:
    """Per identifier key, the activity datetimes of its DEP reports."""
    out: dict[str, list[pd.Timestamp]] = {}
    if reports.empty:
        return out
    frame = reports[reports["log_type"] == "DEP"]
    times = pd.to_datetime(frame["activity_datetime_utc"], utc=True)
    for cfr, ircs, ext, when in zip(
        frame["cfr"], frame["ircs"], frame["external_identification"], times, strict=True
    ):
        if pd.isna(when):
            continue
        for key in _identifier_keys(cfr, ircs, ext):
            out.setdefault(key, []).append(when)
    return out
