"""Missing FAR and missing DEP on hand-made tracks and logbooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from platform_assets.alerts.missing_declarations import (
    MissingDepSettings,
    MissingFarSettings,
    departures,
    far_days_judged,
    missing_dep_alerts,
    missing_far_alerts,
)

from .test_alerts_helpers import positions, track

NOW = datetime(2024, 5, 9, 8, tzinfo=UTC)
YESTERDAY = datetime(2024, 5, 8, tzinfo=UTC)
FISHING = [(47.0, -5.0 + i * 0.01) for i in range(6)]


def _reports(*rows) -> pd.DataFrame:
    columns = [
        "report_id",
        "cfr",
        "ircs",
        "external_identification",
        "log_type",
        "activity_datetime_utc",
    ]
    frame = pd.DataFrame(list(rows), columns=columns)
    frame["activity_datetime_utc"] = pd.to_datetime(frame["activity_datetime_utc"], utc=True)
    return frame


def test_days_judged_need_the_day_over_plus_grace() -> None:
    settings = MissingFarSettings(grace_hours=6, lookback_days=2)
    assert far_days_judged(NOW, settings) == [YESTERDAY - timedelta(days=1), YESTERDAY]
    early = datetime(2024, 5, 9, 5, tzinfo=UTC)  # yesterday's grace not over yet
    assert far_days_judged(early, settings)[-1] == YESTERDAY - timedelta(days=1)


def test_fishing_day_without_far_fires_with_positions_as_evidence() -> None:
    frame = positions(track("FRA1", FISHING, YESTERDAY + timedelta(hours=10), first_id=100))
    [alert] = missing_far_alerts(frame, _reports(), NOW, MissingFarSettings())
    assert alert.vessel_key == "CFR:FRA1" and alert.episode_start == YESTERDAY
    assert alert.evidence["position_ids"] == list(range(100, 106))


def test_far_that_day_under_any_identifier_clears() -> None:
    frame = positions(track("FRA1", FISHING, YESTERDAY + timedelta(hours=10), ircs="ABCD"))
    by_ircs = _reports(("r1", None, "ABCD", None, "FAR", YESTERDAY + timedelta(hours=23)))
    assert missing_far_alerts(frame, by_ircs, NOW, MissingFarSettings()) == []
    other_day = _reports(("r1", "FRA1", None, None, "FAR", YESTERDAY - timedelta(hours=1)))
    assert len(missing_far_alerts(frame, other_day, NOW, MissingFarSettings())) == 1
    a_dep = _reports(("r1", "FRA1", None, None, "DEP", YESTERDAY + timedelta(hours=1)))
    assert len(missing_far_alerts(frame, a_dep, NOW, MissingFarSettings())) == 1


def test_not_fishing_at_port_too_few_positions_or_day_not_judged() -> None:
    start = YESTERDAY + timedelta(hours=10)
    settings = MissingFarSettings(min_fishing_positions=3)
    assert (
        missing_far_alerts(
            positions(track("A", FISHING, start, fishing=False)), _reports(), NOW, settings
        )
        == []
    )
    assert (
        missing_far_alerts(
            positions(track("A", FISHING, start, at_port=True)), _reports(), NOW, settings
        )
        == []
    )
    assert (
        missing_far_alerts(positions(track("A", FISHING[:2], start)), _reports(), NOW, settings)
        == []
    )
    today = positions(track("A", FISHING, NOW - timedelta(hours=3)))
    assert missing_far_alerts(today, _reports(), NOW, settings) == []


def _departure_track(start: datetime):
    port = track("FRA1", [(48.38, -4.49)] * 3, start, at_port=True, fishing=False)
    sea = track(
        "FRA1",
        [(48.3, -4.7), (48.2, -4.9), (48.1, -5.1)],
        start + timedelta(hours=1, minutes=30),
        first_id=10,
        fishing=False,
    )
    return positions(port, sea)


def test_departures_need_consecutive_positions_at_sea() -> None:
    frame = _departure_track(NOW - timedelta(hours=12))
    found = departures(frame, 2)
    assert len(found) == 1 and found.iloc[0]["port_position_id"] == 3
    assert departures(frame, 4).empty


def test_departure_without_dep_fires_and_dep_within_tolerance_clears() -> None:
    start = NOW - timedelta(hours=12)
    frame = _departure_track(start)
    left = start + timedelta(hours=1, minutes=30)
    settings = MissingDepSettings(tolerance_hours=2)
    [alert] = missing_dep_alerts(frame, _reports(), NOW, settings)
    assert alert.episode_start == left and alert.evidence["position_ids"] == [3, 10, 11]
    on_time = _reports(("d", "FRA1", None, None, "DEP", left - timedelta(hours=1)))
    assert missing_dep_alerts(frame, on_time, NOW, settings) == []
    too_early = _reports(("d", "FRA1", None, None, "DEP", left - timedelta(hours=3)))
    assert len(missing_dep_alerts(frame, too_early, NOW, settings)) == 1


def test_departure_not_judged_before_the_tolerance_has_passed() -> None:
    frame = _departure_track(NOW - timedelta(hours=3))
    assert missing_dep_alerts(frame, _reports(), NOW, MissingDepSettings(tolerance_hours=4)) == []
