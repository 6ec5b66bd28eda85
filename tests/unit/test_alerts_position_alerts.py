"""Position alerts on hand-made tracks: every filter of a specification, one at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from platform_assets.alerts.position_alerts import evaluate_specifications, vessel_context
from platform_assets.alerts.specifications import (
    GearFilter,
    PositionAlertSpecification,
    Schedule,
    SpecificationError,
    ValidityPeriod,
    parse_specification,
)

from .test_alerts_helpers import NOW, no_context, positions, track, zone_index

IN_BOX = [(47.4, -4.9), (47.5, -4.5), (47.55, -4.45), (47.8, -4.1)]  # crosses the closed box
OUTSIDE = [(46.0, -3.0), (46.1, -3.1)]
START = NOW - timedelta(hours=3)


def _run(spec: PositionAlertSpecification, frame: pd.DataFrame, context=None, now=NOW):
    alerts, _ = evaluate_specifications(
        [spec], frame, no_context() if context is None else context, zone_index(), now
    )
    return alerts


def _spec(**fields) -> PositionAlertSpecification:
    return PositionAlertSpecification(id=1, name="closed box", **fields)


def _keys(alerts) -> list[str]:
    return sorted(a.vessel_key for a in alerts)


def test_track_crossing_closed_zone_fires_with_evidence() -> None:
    frame = positions(track("FRA1", IN_BOX, START, first_id=10))
    [alert] = _run(_spec(zones=["Closed box 47.5N 4.5W"]), frame)
    assert alert.vessel_key == "CFR:FRA1"
    assert alert.evidence["position_ids"] == [11, 12]
    assert alert.evidence["zones"] == ["Closed box 47.5N 4.5W"]
    assert alert.episode_start == datetime(2024, 5, 8, tzinfo=UTC)
    assert alert.triggered_at == START + timedelta(minutes=60)


def test_zone_filter_excludes_tracks_outside() -> None:
    frame = positions(track("FRA2", OUTSIDE, START))
    assert _run(_spec(zones=["Closed box 47.5N 4.5W"]), frame) == []


def test_zones_and_across_layers_or_within_a_layer() -> None:
    frame = positions(track("FRA1", IN_BOX, START), track("GBR1", [(55, 0)], START, first_id=50))
    both = _spec(zones=["Closed box 47.5N 4.5W", "EEZ FRA"])
    assert _keys(_run(both, frame)) == ["CFR:FRA1"]
    either_eez = _spec(zones=["EEZ FRA", "EEZ GBR"])
    assert _keys(_run(either_eez, frame)) == ["CFR:FRA1", "CFR:GBR1"]
    impossible = _spec(zones=["Closed box 47.5N 4.5W", "EEZ GBR"])
    assert _run(impossible, frame) == []


def test_window_depth() -> None:
    old = positions(track("FRA1", IN_BOX, NOW - timedelta(hours=30)))
    assert _run(_spec(zones=["Closed box 47.5N 4.5W"]), old) == []
    deeper = _spec(zones=["Closed box 47.5N 4.5W"], track_analysis_depth_hours=48)
    assert _keys(_run(deeper, old)) == ["CFR:FRA1"]
    future = positions(track("FRA1", IN_BOX, NOW + timedelta(hours=1)))
    assert _run(deeper, future) == []


@pytest.mark.parametrize("fishing", [False, None])
def test_only_fishing_positions(fishing) -> None:
    frame = positions(track("FRA1", IN_BOX, START, fishing=fishing))
    assert _run(_spec(zones=["Closed box 47.5N 4.5W"]), frame) == []
    all_positions = _spec(zones=["Closed box 47.5N 4.5W"], only_fishing_positions=False)
    assert _keys(_run(all_positions, frame)) == ["CFR:FRA1"]


def test_flag_states() -> None:
    frame = positions(
        track("FRA1", IN_BOX, START), track("ESP1", IN_BOX, START, flag="ES", first_id=20)
    )
    assert _keys(_run(_spec(flag_states=["ES"]), frame)) == ["CFR:ESP1"]
    assert _keys(_run(_spec(), frame)) == ["CFR:ESP1", "CFR:FRA1"]


def _register() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "vessel_id": 7,
                "cfr": "FRA1",
                "ircs": None,
                "external_immatriculation": None,
                "district_code": "GV",
                "declared_fishing_gears": ["GNS"],
            },
            {
                "vessel_id": 8,
                "cfr": "FRA2",
                "ircs": "ABCD",
                "external_immatriculation": None,
                "district_code": "BR",
                "declared_fishing_gears": None,
            },
        ]
    )


def _reports() -> pd.DataFrame:
    def report(cfr, log_type, hours_ago, value):
        return {
            "cfr": cfr,
            "ircs": None,
            "external_identification": None,
            "log_type": log_type,
            "activity_datetime_utc": pd.Timestamp(NOW - timedelta(hours=hours_ago)),
            "value": value,
        }

    return pd.DataFrame(
        [
            # FRA2's previous trip: other gear, must not count
            report("FRA2", "DEP", 200, {"gearOnboard": [{"gear": "PS", "mesh": 20}]}),
            report("FRA2", "DEP", 10, {"gearOnboard": [{"gear": "OTB", "mesh": 70}]}),
            report(
                "FRA2",
                "FAR",
                2,
                {"hauls": [{"gear": "OTB", "mesh": 70, "catches": [{"species": "HKE"}]}]},
            ),
        ]
    )


def _two_vessels() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = positions(
        track("FRA1", IN_BOX, START), track(None, IN_BOX, START, ircs="ABCD", first_id=20)
    )
    return frame, vessel_context(_register(), _reports(), NOW)


def test_vessel_ids_and_district_codes_via_register() -> None:
    frame, context = _two_vessels()
    assert _keys(_run(_spec(vessel_ids=[8]), frame, context)) == ["IRCS:ABCD"]
    assert _keys(_run(_spec(district_codes=["GV"]), frame, context)) == ["CFR:FRA1"]
    assert _run(_spec(district_codes=["XX"]), frame, context) == []


def test_gears_with_mesh_from_current_trip_and_declared_fallback() -> None:
    frame, context = _two_vessels()
    assert _keys(_run(_spec(gears=[GearFilter(gear="OTB")]), frame, context)) == ["IRCS:ABCD"]
    small = _spec(gears=[GearFilter(gear="OTB", max_mesh=60)])
    assert _run(small, frame, context) == []
    ranged = _spec(gears=[GearFilter(gear="OTB", min_mesh=65, max_mesh=80)])
    assert _keys(_run(ranged, frame, context)) == ["IRCS:ABCD"]
    assert _run(_spec(gears=[GearFilter(gear="PS")]), frame, context) == []  # previous trip
    assert _keys(_run(_spec(gears=[GearFilter(gear="GNS")]), frame, context)) == ["CFR:FRA1"]
    # the declared gear has no mesh: a mesh condition cannot be met
    assert _run(_spec(gears=[GearFilter(gear="GNS", min_mesh=1)]), frame, context) == []


def test_species_on_board() -> None:
    frame, context = _two_vessels()
    assert _keys(_run(_spec(species=["HKE", "SOL"]), frame, context)) == ["IRCS:ABCD"]
    assert _run(_spec(species=["SOL"]), frame, context) == []


def test_min_depth() -> None:
    deep = positions(track("FRA1", [(47.0, -7.0)], START))
    shallow = positions(track("FRA2", [(47.0, -4.0)], START))
    both = pd.concat([deep, shallow], ignore_index=True)
    assert _keys(_run(_spec(min_depth_m=500), both)) == ["CFR:FRA1"]
    assert _run(_spec(min_depth_m=1000), both) == []


def test_schedule_periods_weekdays_and_yearly_repeat() -> None:
    frame = positions(track("FRA1", IN_BOX, START))  # Wednesday 8 May 2024, 09:00-10:30 UTC
    may = ValidityPeriod(
        start=datetime(2020, 5, 1, tzinfo=UTC), end=datetime(2020, 6, 1, tzinfo=UTC)
    )
    assert _run(_spec(schedule=Schedule(periods=[may])), frame) == []
    yearly = Schedule(periods=[may], repeat_each_year=True)
    assert _keys(_run(_spec(schedule=yearly), frame)) == ["CFR:FRA1"]
    assert _keys(_run(_spec(schedule=Schedule(weekdays=[2])), frame)) == ["CFR:FRA1"]
    assert _run(_spec(schedule=Schedule(weekdays=[5, 6])), frame) == []
    winter = ValidityPeriod(  # wraps over the new year
        start=datetime(2020, 11, 1, tzinfo=UTC), end=datetime(2021, 3, 1, tzinfo=UTC)
    )
    assert _run(_spec(schedule=Schedule(periods=[winter], repeat_each_year=True)), frame) == []


def test_inactive_specification_is_skipped() -> None:
    frame = positions(track("FRA1", IN_BOX, START))
    assert _run(_spec(is_active=False), frame) == []


def test_many_specifications_at_once_match_one_by_one() -> None:
    frame, context = _two_vessels()
    specs = [
        _spec(zones=["Closed box 47.5N 4.5W"]).model_copy(update={"id": 1}),
        _spec(species=["HKE"]).model_copy(update={"id": 2}),
        _spec(min_depth_m=10).model_copy(update={"id": 3}),
        _spec(flag_states=["FR"], zones=["EEZ FRA"]).model_copy(update={"id": 4}),
    ]
    together, _ = evaluate_specifications(specs, frame, context, zone_index(), NOW)
    alone = [a for s in specs for a in _run(s, frame, context)]
    assert sorted((a.specification_id, a.vessel_key) for a in together) == sorted(
        (a.specification_id, a.vessel_key) for a in alone
    )


def test_bad_specification_row_is_named() -> None:
    with pytest.raises(SpecificationError, match="id=3 name='x'"):
        parse_specification(
            {"id": 3, "name": "x", "gears": [{"gear": "OTB", "min_mesh": 90, "max_mesh": 10}]}
        )
