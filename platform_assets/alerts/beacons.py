"""Silent beacons: a vessel whose last position is older than a multiple of its emission period.

Lifecycle of a beacon malfunction (one open per vessel):
detected (the silence exceeds the threshold; the vessel is classified AT_SEA or AT_PORT from its
last position, and that step is dated) -> AT_SEA / AT_PORT (a later change of the last position's
port status is a new dated step) -> RESOLVED when a position newer than the silence start arrives
(dated, with the time emission resumed). Thresholds differ at sea (short: a vessel at sea must be
followed) and at port (long: beacons are often switched off at the quay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from platform_assets.alerts.pending import SILENT_BEACON, ProducedAlert, vessel_key

AT_SEA, AT_PORT, RESOLVED = "AT_SEA", "AT_PORT", "RESOLVED"

LAST_POSITION_COLUMNS = (
    "id",
    "internal_reference_number",
    "external_reference_number",
    "ircs",
    "vessel_name",
    "flag_state",
    "latitude",
    "longitude",
    "last_position_datetime_utc",
    "emission_period_s",
    "is_at_port",
)
"""Columns of last positions the beacon check reads."""


@dataclass(frozen=True)
class BeaconSettings:
    """Thresholds: silence longer than multiple x emission period (period clamped to a minimum,
    a default when unknown)."""

    at_sea_multiple: float = 6.0
    at_port_multiple: float = 24.0
    default_period_minutes: float = 60.0
    min_period_minutes: float = 10.0
    max_silence_days: float = 30.0
    """Older silences are not beacon malfunctions but vessels out of activity."""


@dataclass(frozen=True)
class OpenMalfunction:
    """A stored malfunction not yet resolved."""

    id: int
    vessel_key: str
    silent_since: datetime
    vessel_status: str


@dataclass
class BeaconPlan:
    """What to write to `alerts.beacon_malfunctions`."""

    opened: list[dict[str, Any]] = field(default_factory=list)
    status_changes: list[tuple[int, str]] = field(default_factory=list)
    """(malfunction id, new vessel status)"""
    resolved: list[tuple[int, datetime]] = field(default_factory=list)
    """(malfunction id, datetime of the position that resumed emission)"""

    def counts(self) -> dict[str, int]:
        """Sizes, for logs and metadata."""
        return {
            "opened": len(self.opened),
            "status_changes": len(self.status_changes),
            "resolved": len(self.resolved),
        }


def threshold_seconds(period_s: Any, at_port: bool, settings: BeaconSettings) -> float:
    """Silence (seconds) beyond which the beacon counts as silent."""
    if period_s is None or not np.isfinite(period_s) or period_s <= 0:
        period = settings.default_period_minutes * 60.0
    else:
        period = max(float(period_s), settings.min_period_minutes * 60.0)
    multiple = settings.at_port_multiple if at_port else settings.at_sea_multiple
    return multiple * period


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def plan_beacons(
    last_positions: pd.DataFrame,
    open_malfunctions: list[OpenMalfunction],
    now: datetime,
    settings: BeaconSettings,
) -> BeaconPlan:
    """Open, update and resolve beacon malfunctions from the vessels' last positions."""
    plan = BeaconPlan()
    by_key = {m.vessel_key: m for m in open_malfunctions}
    seen: set[str] = set()
    for row in last_positions.itertuples(index=False):
        key = vessel_key(row.internal_reference_number, row.ircs, row.external_reference_number)
        if key is None or key in seen:
            continue
        seen.add(key)
        last = pd.Timestamp(row.last_position_datetime_utc)
        last = (last.tz_localize(UTC) if last.tzinfo is None else last).to_pydatetime()
        at_port = bool(_none(row.is_at_port))
        status = AT_PORT if at_port else AT_SEA
        current = by_key.get(key)
        if current is not None:
            if last > current.silent_since:
                plan.resolved.append((current.id, last))
                continue  # emission resumed; a new silence is judged on a later run
            if current.vessel_status != status:
                plan.status_changes.append((current.id, status))
            continue
        silence = (now - last).total_seconds()
        threshold = threshold_seconds(_none(row.emission_period_s), at_port, settings)
        if silence <= threshold or silence > settings.max_silence_days * 86400:
            continue
        plan.opened.append(
            {
                "vessel_key": key,
                "internal_reference_number": _none(row.internal_reference_number),
                "external_reference_number": _none(row.external_reference_number),
                "ircs": _none(row.ircs),
                "vessel_name": _none(row.vessel_name),
                "flag_state": _none(row.flag_state),
                "last_position_id": int(row.id),
                "latitude": _none(row.latitude),
                "longitude": _none(row.longitude),
                "silent_since": last,
                "emission_period_s": _none(row.emission_period_s),
                "threshold_s": threshold,
                "vessel_status": status,
            }
        )
    return plan


def beacon_alerts(open_rows: pd.DataFrame, now: datetime) -> list[ProducedAlert]:
    """One SILENT_BEACON alert per open malfunction (rows of `alerts.beacon_malfunctions`)."""
    alerts = []
    for row in open_rows.itertuples(index=False):
        since = pd.Timestamp(row.silent_since).to_pydatetime()
        hours = (now - since) / timedelta(hours=1)
        alerts.append(
            ProducedAlert(
                alert_type=SILENT_BEACON,
                vessel_key=row.vessel_key,
                episode_start=since,
                triggered_at=since,
                title=f"Beacon silent for {hours:.1f} h ({row.vessel_status.replace('_', ' ').lower()})",
                internal_reference_number=_none(row.internal_reference_number),
                external_reference_number=_none(row.external_reference_number),
                ircs=_none(row.ircs),
                vessel_name=_none(row.vessel_name),
                flag_state=_none(row.flag_state),
                evidence={
                    "position_ids": [int(row.last_position_id)],
                    "beacon_malfunction_id": int(row.id),
                    "silent_since_utc": since.isoformat(),
                },
                details={
                    "vessel_status": row.vessel_status,
                    "threshold_s": float(row.threshold_s),
                    "emission_period_s": _none(row.emission_period_s),
                },
            )
        )
    return alerts
