"""The incremental compare loop's run config and its time windows, in UTC.

Every ingestion job takes the same options (subclass `IncrementalConfig`): `start` / `end`
(ISO dates or datetimes; a date or a naive time is read in `timezone`), else since the last
successful run (the default: the end of the window that run covered, from `ops.run_metrics`), `force`
(reprocess what the catalog says is done) and `skip_existing` (leave rows already in the target).

Windows are half-open `[start, end)` in UTC. Sources that speak local time go through
`local_to_utc` / `local_day_window` with an explicit zone: a local day is 23 or 25 hours on a
daylight-saving change, and a window cut into local hours never drops or repeats an hour.

Time-windowed assets use Dagster partitions instead (`daily_partitions`, `BACKFILL_POLICY`), so
backfills from the UI and `dagster asset materialize --partition-range` work; `resolve_window`
takes the partition's window when there is one.

Example::

    class PositionsIngestConfig(IncrementalConfig):
        source: str = "naf"

    @asset(...)
    def positions(context, config: PositionsIngestConfig, warehouse: WarehouseResource):
        with warehouse.connect() as conn:
            last_end = last_success_end(conn, context.job_name, config.source)
        window = resolve_window(config, now=utc_now(), last_success_end=last_end,
                                partition_window=partition_window_of(context))
        ...  # read the source over window.start .. window.end; record the window in run metrics
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagster import BackfillPolicy, Config, DailyPartitionsDefinition
from pydantic import Field

DEFAULT_LOOKBACK = timedelta(days=1)
"""The window of a first run (no successful run yet) when no start is given."""

BACKFILL_POLICY = BackfillPolicy.single_run()
"""Partitioned ingestion assets take a whole range in one run (needed by `--partition-range`)."""


class WindowError(ValueError):
    """A start/end/time zone that does not make a window."""


class IncrementalConfig(Config):
    """Run config shared by ingestion jobs: which window, and what to do with known items."""

    start: str | None = Field(
        default=None,
        description="window start, ISO date or datetime (inclusive); a date or a time without "
        "offset is read in `timezone`; empty: the end of the last successful run's window",
    )
    end: str | None = Field(
        default=None, description="window end, ISO date or datetime (exclusive); empty: now"
    )
    since_last_success: bool = Field(
        default=True,
        description="without `start`, begin where the last successful run of this job and "
        "source ended (false: a lookback of one day before `end`)",
    )
    force: bool = Field(
        default=False, description="reprocess items the catalog says are done (idempotent)"
    )
    skip_existing: bool = Field(
        default=True, description="leave rows already present in the target table as they are"
    )
    timezone: str = Field(
        default="UTC", description="IANA zone of dates and naive times in `start` / `end`"
    )


@dataclass(frozen=True)
class Window:
    """A half-open UTC interval [start, end)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise WindowError(f"window {name} {value.isoformat()} has no time zone")
        if self.end < self.start:
            raise WindowError(
                f"window end {self.end.isoformat()} is before its start {self.start.isoformat()}"
            )
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    @property
    def duration(self) -> timedelta:
        """Its length (a local day can be 23 or 25 hours)."""
        return self.end - self.start

    def contains(self, moment: datetime) -> bool:
        """Whether an aware datetime falls in [start, end)."""
        return self.start <= moment < self.end

    def as_metadata(self) -> dict[str, str]:
        """For run metadata and logs."""
        return {"window_start": self.start.isoformat(), "window_end": self.end.isoformat()}


def utc_now() -> datetime:
    """The current time, aware, in UTC (the one clock call; tests pass `now` instead)."""
    return datetime.now(UTC)


def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name, with an error that names it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"unknown time zone {name!r}") from None


def local_to_utc(
    naive: datetime,
    tz: str,
    *,
    ambiguous: Literal["earlier", "later", "raise"] = "raise",
    nonexistent: Literal["forward", "raise"] = "raise",
) -> datetime:
    """A wall-clock time of zone `tz` as UTC.

    In the hour repeated when clocks go back, `ambiguous` picks the first or second pass (or
    raises); in the hour skipped when they go forward, `nonexistent="forward"` moves the time by
    the gap (02:30 becomes 03:30 local), else it raises.
    """
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    info = zone(tz)
    first = naive.replace(tzinfo=info, fold=0)
    second = naive.replace(tzinfo=info, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first.astimezone(UTC)
    # the offsets differ: the time is either repeated (round trip holds) or skipped (it does not)
    repeated = first.astimezone(UTC).astimezone(info).replace(tzinfo=None) == naive
    if repeated:
        if ambiguous == "raise":
            raise WindowError(f"{naive.isoformat()} happens twice in {tz} (clocks go back)")
        return (first if ambiguous == "earlier" else second).astimezone(UTC)
    if nonexistent == "raise":
        raise WindowError(f"{naive.isoformat()} does not exist in {tz} (clocks go forward)")
    # fold=0 reads it with the offset before the gap, which lands after the gap in UTC
    return first.astimezone(UTC)


def local_day_window(day: date, tz: str) -> Window:
    """The local day `day` of zone `tz` as a UTC window (23, 24 or 25 hours)."""
    start = local_to_utc(datetime.combine(day, time()), tz, nonexistent="forward")
    end = local_to_utc(datetime.combine(day + timedelta(days=1), time()), tz, nonexistent="forward")
    return Window(start, end)


def split(window: Window, step: timedelta) -> Iterator[Window]:
    """Consecutive sub-windows of at most `step`, stepping in UTC (no hour dropped or repeated)."""
    if step <= timedelta(0):
        raise WindowError(f"step {step} must be positive")
    cursor = window.start
    while cursor < window.end:
        following = min(cursor + step, window.end)
        yield Window(cursor, following)
        cursor = following


def local_days(window: Window, tz: str) -> list[date]:
    """The local dates of zone `tz` that the window touches, in order."""
    info = zone(tz)
    first = window.start.astimezone(info).date()
    last_moment = (
        window.end - timedelta(microseconds=1) if window.end > window.start else window.end
    )
    last = last_moment.astimezone(info).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def parse_moment(text: str, tz: str, *, field_name: str = "start") -> datetime:
    """An ISO date or datetime of run config as UTC; a date is local midnight in `tz`."""
    value = text.strip()
    is_date = len(value) == 10
    try:
        if is_date:
            parsed = datetime.combine(date.fromisoformat(value), time())
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WindowError(f"{field_name} {text!r} is not an ISO date or datetime") from None
    if is_date:  # a midnight that does not exist (some zones skip it) moves to the gap's end
        return local_to_utc(parsed, tz, nonexistent="forward")
    return local_to_utc(parsed, tz, ambiguous="raise")


def resolve_window(
    config: IncrementalConfig,
    *,
    now: datetime,
    last_success_end: datetime | None = None,
    partition_window: Window | None = None,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> Window:
    """The window a run covers: the partition's when partitioned; else `start`/`end` from the
    config; else from the end of the last successful run (or `lookback` before `end`) to now."""
    if partition_window is not None:
        return partition_window
    end = parse_moment(config.end, config.timezone, field_name="end") if config.end else now
    if config.start:
        start = parse_moment(config.start, config.timezone)
    elif config.since_last_success and last_success_end is not None:
        start = min(last_success_end, end)
    else:
        start = end - lookback
    if end < start:
        raise WindowError(f"window end {end.isoformat()} is before its start {start.isoformat()}")
    return Window(start, end)


def daily_partitions(start_date: str, tz: str = "UTC") -> DailyPartitionsDefinition:
    """Daily partitions of local days in `tz` (Dagster handles the 23/25-hour days)."""
    zone(tz)
    return DailyPartitionsDefinition(start_date=start_date, timezone=tz)


def partition_window_of(context: Any) -> Window | None:
    """The UTC window of a partitioned run (one partition or a range), else None."""
    if not getattr(context, "has_partition_key", False) and not getattr(
        context, "has_partition_key_range", False
    ):
        return None
    window = context.partition_time_window
    return Window(window.start, window.end)
