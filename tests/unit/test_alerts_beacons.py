"""Beacon malfunction lifecycle on hand-made last positions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from platform_assets.alerts.beacons import (
    AT_PORT,
    AT_SEA,
    BeaconSettings,
    OpenMalfunction,
    plan_beacons,
    threshold_seconds,
)

NOW = datetime(2024, 5, 8, 12, tzinfo=UTC)
SETTINGS = BeaconSettings(
    at_sea_multiple=4, at_port_multiple=24, default_period_minutes=60, min_period_minutes=10
)


def _last(cfr: str, silent_hours: float, period_s: float | None, at_port: bool) -> dict:
    return {
        "id": 1,
        "internal_reference_number": cfr,
        "external_reference_number": None,
        "ircs": None,
        "vessel_name": "V",
        "flag_state": "FR",
        "latitude": 47.0,
        "longitude": -4.0,
        "last_position_datetime_utc": pd.Timestamp(NOW - timedelta(hours=silent_hours)),
        "emission_period_s": period_s,
        "is_at_port": at_port,
    }


def test_thresholds_are_multiples_of_the_period_clamped() -> None:
    assert threshold_seconds(3600, False, SETTINGS) == 4 * 3600
    assert threshold_seconds(3600, True, SETTINGS) == 24 * 3600
    assert threshold_seconds(None, False, SETTINGS) == 4 * 3600
    assert threshold_seconds(0, False, SETTINGS) == 4 * 3600
    assert threshold_seconds(60, False, SETTINGS) == 4 * 600


def test_silence_opens_at_sea_and_at_port_with_their_thresholds() -> None:
    frame = pd.DataFrame(
        [
            _last("SEA_SILENT", 5, 3600, False),
            _last("SEA_OK", 3, 3600, False),
            _last("PORT_OK", 5, 3600, True),
            _last("PORT_SILENT", 30, 3600, True),
            _last("OUT_OF_ACTIVITY", 24 * 60, 3600, False),
        ]
    )
    plan = plan_beacons(frame, [], NOW, SETTINGS)
    opened = {o["vessel_key"]: o["vessel_status"] for o in plan.opened}
    assert opened == {"CFR:SEA_SILENT": AT_SEA, "CFR:PORT_SILENT": AT_PORT}


def test_open_malfunction_status_change_then_resolution() -> None:
    since = NOW - timedelta(hours=5)
    current = OpenMalfunction(42, "CFR:A", since.astimezone(UTC), AT_SEA)
    still = pd.DataFrame([_last("A", 5, 3600, True)])
    plan = plan_beacons(still, [current], NOW, SETTINGS)
    assert plan.status_changes == [(42, AT_PORT)] and plan.opened == [] and plan.resolved == []
    resumed = pd.DataFrame([_last("A", 0.1, 3600, False)])
    plan = plan_beacons(resumed, [current], NOW, SETTINGS)
    assert [r[0] for r in plan.resolved] == [42] and plan.opened == []
