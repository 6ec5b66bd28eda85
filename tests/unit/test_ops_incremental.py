"""Windows of the incremental loop: UTC, local days across daylight-saving changes, run config."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_assets.ops.incremental import (
    IncrementalConfig,
    Window,
    WindowError,
    local_day_window,
    local_days,
    local_to_utc,
    resolve_window,
    split,
)

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
ZONES = [PARIS, NEW_YORK, "Australia/Sydney", "Asia/Kolkata", "Pacific/Chatham", "UTC"]
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- the two transitions, by hand ------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [
        (PARIS, date(2026, 3, 29), date(2026, 10, 25)),
        (NEW_YORK, date(2026, 3, 8), date(2026, 11, 1)),
    ],
)
def test_local_days_of_the_changes_are_23_and_25_hours(
    zone: str, spring: date, autumn: date
) -> None:
    assert local_day_window(spring, zone).duration == timedelta(hours=23)
    assert local_day_window(autumn, zone).duration == timedelta(hours=25)
    assert local_day_window(spring + timedelta(days=1), zone).duration == timedelta(hours=24)


def test_spring_forward_skips_an_hour_that_does_not_exist() -> None:
    # Paris, 2026-03-29: 02:00 local becomes 03:00; 01:59 is 00:59 UTC, 03:00 is 01:00 UTC
    assert local_to_utc(datetime(2026, 3, 29, 1, 59), PARIS) == utc(2026, 3, 29, 0, 59)
    assert local_to_utc(datetime(2026, 3, 29, 3, 0), PARIS) == utc(2026, 3, 29, 1, 0)
    with pytest.raises(WindowError, match="does not exist in Europe/Paris"):
        local_to_utc(datetime(2026, 3, 29, 2, 30), PARIS)
    assert local_to_utc(datetime(2026, 3, 29, 2, 30), PARIS, nonexistent="forward") == utc(
        2026, 3, 29, 1, 30
    )


def test_fall_back_repeats_an_hour_read_either_way() -> None:
    # Paris, 2026-10-25: 03:00 local goes back to 02:00; 02:30 happens at 00:30 and 01:30 UTC
    naive = datetime(2026, 10, 25, 2, 30)
    with pytest.raises(WindowError, match="happens twice"):
        local_to_utc(naive, PARIS)
    assert local_to_utc(naive, PARIS, ambiguous="earlier") == utc(2026, 10, 25, 0, 30)
    assert local_to_utc(naive, PARIS, ambiguous="later") == utc(2026, 10, 25, 1, 30)


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)])
def test_hours_of_a_change_day_are_neither_dropped_nor_repeated(day: date) -> None:
    window = local_day_window(day, PARIS)
    hours = list(split(window, timedelta(hours=1)))
    assert len(hours) == window.duration / timedelta(hours=1)
    starts = [h.start for h in hours]
    assert len(set(starts)) == len(starts)
    assert hours[0].start == window.start and hours[-1].end == window.end
    assert all(a.end == b.start for a, b in zip(hours, hours[1:], strict=False))
    # each UTC hour is one local wall-clock hour label; the repeated 02:00 shows twice on fall
    # back, with different offsets, and the skipped 02:00 not at all in spring
    labels = [h.start.astimezone(window_zone()).strftime("%H%z") for h in hours]
    assert len(set(labels)) == len(labels)
    local_hours = [label[:2] for label in labels]
    assert local_hours.count("02") == (2 if day.month == 10 else 0)


def window_zone():  # noqa: ANN201
    from zoneinfo import ZoneInfo

    return ZoneInfo(PARIS)


# --- properties over many days and zones -----------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    day=st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31)),
    tz=st.sampled_from(ZONES),
)
def test_consecutive_local_days_tile_time(day: date, tz: str) -> None:
    today, tomorrow = local_day_window(day, tz), local_day_window(day + timedelta(days=1), tz)
    assert today.end == tomorrow.start
    assert timedelta(hours=22) <= today.duration <= timedelta(hours=26)
    assert local_days(today, tz) == [day]


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2050, 1, 1)),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 40),
    step_minutes=st.integers(min_value=1, max_value=60 * 24 * 3),
)
def test_split_covers_the_window_exactly(start: datetime, minutes: int, step_minutes: int) -> None:
    window = Window(
        start.replace(tzinfo=UTC), start.replace(tzinfo=UTC) + timedelta(minutes=minutes)
    )
    parts = list(split(window, timedelta(minutes=step_minutes)))
    assert sum((p.duration for p in parts), timedelta()) == window.duration
    if parts:
        assert parts[0].start == window.start and parts[-1].end == window.end
    assert all(a.end == b.start for a, b in zip(parts, parts[1:], strict=False))


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1)),
    tz=st.sampled_from(ZONES),
)
def test_every_utc_instant_reads_back_from_its_local_time(moment: datetime, tz: str) -> None:
    from zoneinfo import ZoneInfo

    instant = moment.replace(tzinfo=UTC)
    local = instant.astimezone(ZoneInfo(tz))
    side = "later" if local.fold else "earlier"
    assert local_to_utc(local.replace(tzinfo=None), tz, ambiguous=side) == instant


# --- run config -> window --------------------------------------------------------------------


def test_default_is_since_the_last_successful_run() -> None:
    last = utc(2026, 12, 1, 6)
    assert resolve_window(IncrementalConfig(), now=NOW, last_success_end=last) == Window(last, NOW)


def test_first_run_without_history_looks_back_one_day() -> None:
    assert resolve_window(IncrementalConfig(), now=NOW) == Window(NOW - timedelta(days=1), NOW)
    off = IncrementalConfig(since_last_success=False)
    assert resolve_window(off, now=NOW, last_success_end=utc(2026, 1, 1)).start == NOW - timedelta(
        days=1
    )


def test_dates_are_local_midnights_of_the_configured_zone() -> None:
    config = IncrementalConfig(start="2026-10-25", end="2026-10-26", timezone=PARIS)
    window = resolve_window(config, now=NOW, last_success_end=utc(2020, 1, 1))
    assert window == Window(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert window.duration == timedelta(hours=25)


def test_explicit_offsets_win_over_the_zone() -> None:
    config = IncrementalConfig(
        start="2026-11-30T10:00:00+01:00", end="2026-11-30T12:00Z", timezone=NEW_YORK
    )
    assert resolve_window(config, now=NOW) == Window(utc(2026, 11, 30, 9), utc(2026, 11, 30, 12))


def test_partition_window_wins() -> None:
    partition = local_day_window(date(2026, 3, 29), PARIS)
    config = IncrementalConfig(start="2020-01-01")
    assert resolve_window(config, now=NOW, partition_window=partition) == partition


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (IncrementalConfig(start="yesterday"), "start 'yesterday' is not an ISO"),
        (IncrementalConfig(start="2026-12-02", end="2026-12-01"), "before its start"),
        (IncrementalConfig(start="2026-12-01", timezone="Mars/Olympus"), "unknown time zone"),
        (IncrementalConfig(start="2026-10-25T02:30", timezone=PARIS), "happens twice"),
    ],
)
def test_bad_config_is_named(config: IncrementalConfig, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        resolve_window(config, now=NOW)


def test_config_fragment_extends_into_a_domain_config() -> None:
    class NafConfig(IncrementalConfig):
        files: list[str] = []

    config = NafConfig(files=["a.naf"], force=True)
    assert config.force and config.skip_existing and config.since_last_success
    assert {"start", "end", "force", "skip_existing", "timezone", "files"} <= set(
        NafConfig.model_fields
    )
