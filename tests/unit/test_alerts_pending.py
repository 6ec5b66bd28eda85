"""Reconciliation of produced alerts with stored ones: ids, episodes, closing, silencing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from platform_assets.alerts.pending import (
    CLOSED,
    MISSING_FAR,
    PENDING,
    POSITION_ALERT,
    VALIDATED,
    ProducedAlert,
    Scope,
    Silence,
    StoredAlert,
    alert_id,
    reconcile,
    vessel_key,
)

NOW = datetime(2024, 5, 8, 12, tzinfo=UTC)
DAY = datetime(2024, 5, 8, tzinfo=UTC)


def _alert(key="CFR:A", spec=1, day=DAY, kind=POSITION_ALERT) -> ProducedAlert:
    return ProducedAlert(kind, key, day, NOW, "t", specification_id=spec)


def _stored(produced: ProducedAlert, status=PENDING, cleared=None, id_=None) -> StoredAlert:
    return StoredAlert(
        id_ or produced.episode_id,
        produced.alert_type,
        produced.specification_id,
        produced.vessel_key,
        produced.episode_start,
        status,
        cleared,
    )


SCOPE = Scope(POSITION_ALERT, frozenset({1, 2}))


def test_vessel_key_prefers_cfr_then_ircs_then_external() -> None:
    assert vessel_key("FRA1", "ABCD", "GV1") == "CFR:FRA1"
    assert vessel_key(None, "ABCD", "GV1") == "IRCS:ABCD"
    assert vessel_key("", None, "GV1") == "EXT:GV1"
    assert vessel_key(None, None, None) is None


@given(st.text(), st.integers(0, 10**9) | st.none(), st.text(), st.text())
def test_alert_id_is_stable_and_sensitive(kind, spec, key, episode) -> None:
    assert alert_id(kind, spec, key, episode) == alert_id(kind, spec, key, episode)
    assert alert_id(kind, spec, key, episode) != alert_id(kind, spec, key, episode + "x")


def test_new_alert_is_inserted_then_refreshed_not_duplicated() -> None:
    produced = [_alert()]
    first = reconcile(produced, [], [], SCOPE, NOW)
    assert [i for i, _ in first.insert] == [produced[0].episode_id]
    again = reconcile(produced, [_stored(produced[0])], [], SCOPE, NOW)
    assert again.insert == [] and [i for i, _ in again.refresh] == [produced[0].episode_id]
    assert again.close == []


def test_position_episode_continues_over_midnight() -> None:
    yesterday = _alert(day=DAY - timedelta(days=1))
    today = _alert(day=DAY)
    plan = reconcile([today], [_stored(yesterday)], [], SCOPE, NOW)
    assert [i for i, _ in plan.refresh] == [yesterday.episode_id] and plan.insert == []


def test_cleared_pending_alert_is_closed_validated_one_only_marked() -> None:
    pending, validated = _alert("CFR:A"), _alert("CFR:B")
    stored = [_stored(pending), _stored(validated, VALIDATED)]
    plan = reconcile([], stored, [], SCOPE, NOW)
    assert plan.close == [(pending.episode_id, "cleared")]
    assert plan.clear_validated == [validated.episode_id]


def test_out_of_scope_alerts_are_left_alone() -> None:
    other_spec = _alert(spec=99)
    far = _alert(kind=MISSING_FAR, spec=None)
    plan = reconcile([], [_stored(other_spec), _stored(far)], [], SCOPE, NOW)
    assert plan.close == [] and plan.clear_validated == []
    dated = Scope(MISSING_FAR, episode_from=DAY + timedelta(days=1))
    assert reconcile([], [_stored(far)], [], dated, NOW).close == []


def test_closed_alert_produced_again_is_reopened_validated_stays() -> None:
    closed = _alert("CFR:A")
    validated = _alert("CFR:B")
    stored = [_stored(closed, CLOSED, NOW), _stored(validated, VALIDATED, NOW)]
    plan = reconcile([closed, validated], stored, [], SCOPE, NOW)
    assert [i for i, _ in plan.reopen] == [closed.episode_id]
    assert [i for i, _ in plan.refresh] == [validated.episode_id] and plan.insert == []


def test_silenced_alert_is_not_produced_and_open_one_closes_as_silenced() -> None:
    silence = Silence("CFR:A", POSITION_ALERT, NOW + timedelta(days=1))
    produced = _alert("CFR:A")
    assert reconcile([produced], [], [silence], SCOPE, NOW).insert == []
    plan = reconcile([produced], [_stored(produced)], [silence], SCOPE, NOW)
    assert plan.close == [(produced.episode_id, "silenced")] and len(plan.silenced) == 1


def test_silence_scope_vessel_type_specification_and_expiry() -> None:
    produced = _alert("CFR:A", spec=1)
    cases = {
        Silence("CFR:B", POSITION_ALERT, NOW + timedelta(hours=1)): False,
        Silence("CFR:A", MISSING_FAR, NOW + timedelta(hours=1)): False,
        Silence("CFR:A", POSITION_ALERT, NOW + timedelta(hours=1), specification_id=2): False,
        Silence("CFR:A", POSITION_ALERT, NOW + timedelta(hours=1), specification_id=1): True,
        Silence("CFR:A", POSITION_ALERT, NOW): False,  # expired at now
    }
    for silence, silenced in cases.items():
        plan = reconcile([produced], [], [silence], SCOPE, NOW)
        assert (plan.insert == []) is silenced, silence
