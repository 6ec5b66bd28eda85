"""Sensors that react to database changes through the change outbox, within a second.

A reaction (a consumer of the feed) is declared as N sensors, its *lanes*
(`change_feed_sensors`): Dagster's daemon starts a tick of a given sensor at most every 5 s and one
at a time, so a single sensor that returned with a batch leaves the feed unwatched until its next
tick. The lanes share one position in the database (`ops.change_feed_consumer.feed_cursor`,
platform_assets/change_feed/lanes.py): a lane claims a batch under the consumer's row lock, so
two lanes never emit the same event, and they space their claims (`spacing`, by default the
daemon's 5 s loop over N) so that while one returns with a batch the others are still waiting.

A tick LISTENs on `fishnet_changes` first, then claims from the shared position; with nothing new
it waits for a notification (up to `wait_seconds`, well under Dagster's 60 s sensor timeout) and
claims again. The notification is only a wake-up: the outbox and the position are what make the
feed lossless, so a daemon that was down finds everything that happened meanwhile.

Each batch becomes one run request whose run key is `<consumer>:<batch id>`; the jobs are
state-based (they act on every row that needs it), so a run only carries the batch id in a tag.
A lane's Dagster cursor only counts its completed emitting ticks: a batch emitted by a tick whose
cursor Dagster never stored (daemon killed between our commit and the run submission) is emitted
again by the same lane, with the same run key, at its next tick, unless a run already has it; so is
a batch that still has no run `reemit_grace_seconds` after its emission.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations (config and
# resource parameters) when the definitions are built.
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dagster import (
    DagsterInstance,
    DagsterInvariantViolationError,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from platform_assets.change_feed.feed import (
    CHANNEL,
    DEFAULT_MAX_EVENTS,
    Batch,
    ChangeFeedError,
    FeedSpec,
)
from platform_assets.change_feed.lanes import (
    Lane,
    Unconfirmed,
    claim_batch,
    mark_emitted,
    mark_run_seen,
    unconfirmed_batches,
)
from platform_assets.change_feed.tags import BATCH_TAG, CONSUMER_TAG, EVENTS_TAG, RUN_KEY_TAG
from resources.settings import setting_number
from resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

WAIT_SECONDS_ENV = "FISHNET_SENSOR_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 20.0
"""Long enough that most changes arrive while a tick listens, far below the 60 s gRPC timeout."""


DEFAULT_LANES = 3
DAEMON_LOOP_SECONDS = 5.0
"""The daemon's sensor loop period we space lanes over: Dagster documents that sensors are
evaluated at most every few seconds whatever `minimum_interval_seconds` says (5 s in 1.13).
Lanes only use it to spread their claims; a different period costs latency, never events."""
TICK_END_MARGIN_SECONDS = 0.6
"""A waiting tick ends this long before a daemon loop iteration, so the next one starts at it."""
DEFAULT_REEMIT_GRACE_SECONDS = 30.0
"""How long after its emission a batch with no Dagster run is emitted again (by its lane)."""
RUN_LOOKUP_SKEW_SECONDS = 5.0
"""Runs created up to this long before a batch was recorded still count as its run (two clocks)."""

Connect = Callable[[], AbstractContextManager["psycopg.Connection"]]
# `define_asset_job` returns a class Dagster does not export: anything with a `name` that
# `@sensor(job=...)` accepts.
SensorTarget = Any


def wait_seconds_from_env(default: float = DEFAULT_WAIT_SECONDS) -> float:
    """`FISHNET_SENSOR_WAIT_SECONDS`, read at tick time so it can change without a redeploy."""
    try:
        value = setting_number(WAIT_SECONDS_ENV)
    except ValueError as exc:
        log.warning("ignoring %s", exc)
        return default
    return default if value is None else max(0.0, value)


def _wait_for_change(conn: "psycopg.Connection", tables: Sequence[str], timeout: float) -> bool:
    """Block until a notification names one of `tables` or `timeout` passes; True if one did."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        for notify in conn.notifies(timeout=remaining, stop_after=1):
            if notify.payload in tables:
                return True
    return False


def default_spacing(lanes: int, loop_seconds: float = DAEMON_LOOP_SECONDS) -> float:
    """Lanes claim at most every loop / N seconds: N claims spread over each daemon loop period."""
    return loop_seconds / lanes if lanes > 1 else 0.0


def tick_budget(wait_seconds: float, loop_seconds: float = DAEMON_LOOP_SECONDS) -> float:
    """How long a tick may wait: `wait_seconds`, ending just before a daemon loop iteration.

    The daemon starts the next tick of a sensor at its first loop iteration after the last tick
    ended; a tick that ended just after one would leave the feed unwatched for a whole period.
    """
    if wait_seconds < loop_seconds:
        return wait_seconds
    return math.floor(wait_seconds / loop_seconds) * loop_seconds - TICK_END_MARGIN_SECONDS


@dataclass(frozen=True)
class LaneCursor:
    """A lane's Dagster cursor: how many of its emitting ticks Dagster completed."""

    tick: int = 0
    last_batch: int | None = None

    @classmethod
    def parse(cls, raw: str | None) -> "LaneCursor":
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ChangeFeedError(f"not a change-feed lane cursor: {raw[:200]!r}") from exc
        if not isinstance(data, dict) or "lane_tick" not in data:
            raise ChangeFeedError(f"not a change-feed lane cursor: {raw[:200]!r}")
        last = data.get("last_batch")
        return cls(tick=int(data["lane_tick"]), last_batch=None if last is None else int(last))

    def to_json(self) -> str:
        return json.dumps(
            {"lane_tick": self.tick, "last_batch": self.last_batch}, separators=(",", ":")
        )


@dataclass(frozen=True)
class LaneTick:
    """The outcome of a lane's tick: batches to emit (emitted again first) and the cursor to store."""

    batches: tuple[Batch, ...]
    cursor: LaneCursor
    confirmed: tuple[int, ...] = ()
    note: str | None = None


RunLookup = Callable[[Batch, datetime], bool]
"""Whether Dagster has a run for a batch recorded at the given time."""


def dagster_run_lookup(instance: DagsterInstance) -> RunLookup:
    """Look a batch's run up by run key, then by batch tags (runs started by hand, in-process)."""

    def exists(batch: Batch, recorded_at: datetime) -> bool:
        # Dagster compares `created_after` with naive UTC timestamps: give it UTC. Older runs
        # cannot be this batch's (batch ids start again in a new database).
        after = recorded_at.astimezone(UTC) - timedelta(seconds=RUN_LOOKUP_SKEW_SECONDS)
        for tags in (
            {RUN_KEY_TAG: batch.run_key},
            {BATCH_TAG: str(batch.batch_id), CONSUMER_TAG: batch.consumer},
        ):
            if instance.get_run_ids(filters=RunsFilter(tags=tags, created_after=after), limit=1):
                return True
        return False

    return exists


def evaluate_lane(
    connect: Connect,
    spec: FeedSpec,
    lane: Lane,
    raw_cursor: str | None,
    wait_seconds: float,
    run_exists: RunLookup | None = None,
    *,
    spacing: float = 0.0,
    grace_seconds: float = DEFAULT_REEMIT_GRACE_SECONDS,
    loop_seconds: float = DAEMON_LOOP_SECONDS,
) -> LaneTick:
    """One tick of a lane without Dagster: the batches to emit and the lane cursor to store.

    1. LISTEN, before anything is read.
    2. The lane's unconfirmed batches (`unconfirmed_batches`): each one with a run in Dagster
       (`run_exists`) is marked as such, the others are emitted again, same run key. Without
       `run_exists` (no Dagster instance) they are emitted again: Dagster de-duplicates run keys.
    3. Claim from the shared position, waiting for notifications and for the lanes' `spacing` up
       to the tick's budget; at the budget's end spacing no longer holds a claim back (so with
       `wait_seconds` 0 a tick claims at once). Batches emitted again go out without waiting.
    """
    cursor = LaneCursor.parse(raw_cursor)
    tick = cursor.tick + 1
    grace = timedelta(seconds=grace_seconds)
    deadline = time.monotonic() + tick_budget(wait_seconds, loop_seconds)
    emitted: list[Batch] = []
    confirmed: list[int] = []
    note: str | None = None
    with connect() as conn:
        # LISTEN before the first read: a change committed after the read's snapshot notifies us.
        conn.execute(f"LISTEN {CHANNEL}")

        def settle(candidates: Sequence[Unconfirmed]) -> None:
            found = [
                u.batch.batch_id
                for u in candidates
                if run_exists is not None and run_exists(u.batch, u.created_at)
            ]
            mark_run_seen(conn, found)
            confirmed.extend(found)
            for u in candidates:
                if u.batch.batch_id not in found and mark_emitted(
                    conn, u.batch.batch_id, lane, tick
                ):
                    emitted.append(u.batch)

        settle(unconfirmed_batches(conn, lane, cursor.tick, grace))
        while True:
            remaining = deadline - time.monotonic()
            claim = claim_batch(conn, spec, lane, tick, spacing if remaining > 0 else 0.0)
            if claim.adopted:
                settle(
                    [
                        u
                        for u in unconfirmed_batches(conn, lane, cursor.tick, grace)
                        if u.batch.batch_id in claim.adopted
                    ]
                )
            if claim.batch is not None:
                emitted.append(claim.batch)
                break
            if emitted or remaining <= 0:
                break
            if claim.retry_after is not None:  # another lane claimed a moment ago
                time.sleep(min(claim.retry_after, remaining))
                continue
            if not _wait_for_change(conn, spec.tables, remaining):
                break
    if emitted:
        new_cursor = LaneCursor(tick=tick, last_batch=max(b.batch_id for b in emitted))
    else:
        new_cursor = LaneCursor(tick=cursor.tick, last_batch=cursor.last_batch)
    return LaneTick(tuple(emitted), new_cursor, tuple(confirmed), note)


def run_request_for_batch(batch: Batch, run_config: Mapping[str, Any] | None = None) -> RunRequest:
    """The run request of a batch: its run key makes a re-emitted batch start no second run."""
    return RunRequest(
        run_key=batch.run_key,
        run_config=dict(run_config or {}),
        tags={
            RUN_KEY_TAG: batch.run_key,
            BATCH_TAG: str(batch.batch_id),
            CONSUMER_TAG: batch.consumer,
            EVENTS_TAG: str(len(batch.event_ids)),
        },
    )


def change_feed_sensor(
    name: str,
    tables: Sequence[str],
    operations: Sequence[str],
    job: JobDefinition | SensorTarget,
    wait_seconds: float | None = None,
    filter: str | None = None,  # noqa: A002 - the name callers expect
    max_events: int = DEFAULT_MAX_EVENTS,
    run_config: Mapping[str, Any] | None = None,
    description: str | None = None,
    *,
    lane: int = 1,
    lanes: int = 1,
    spacing_seconds: float | None = None,
    reemit_grace_seconds: float = DEFAULT_REEMIT_GRACE_SECONDS,
) -> SensorDefinition:
    """A RUNNING sensor, lane `lane` of `lanes`, starting `job` once per batch of the consumer `name`.

    `tables` are schema-qualified (`processing.input`); `filter` is an optional SQL predicate over
    the event aliased `e`; `wait_seconds` overrides FISHNET_SENSOR_WAIT_SECONDS (default 20 s).
    `name` is the consumer in `ops.change_feed_consumer`, in run keys, and the first lane's sensor
    name; lane k > 1 is `<name>_lane_<k>`. With the defaults, a consumer of one lane. Use
    `change_feed_sensors` to declare all the lanes of a consumer.
    """
    spec = FeedSpec(
        consumer=name,
        tables=tuple(tables),
        operations=tuple(op.upper() for op in operations),
        filter_sql=filter,
        max_events=max_events,
    )
    this = Lane(name, lane, lanes)
    spacing = default_spacing(lanes) if spacing_seconds is None else spacing_seconds
    what = f"each batch of {'/'.join(spec.operations)} on {', '.join(spec.tables)}"
    lane_note = f" (lane {lane} of {lanes} of {name})" if lanes > 1 else ""

    @sensor(
        name=this.name,
        job=job,
        minimum_interval_seconds=1,
        default_status=DefaultSensorStatus.RUNNING,
        description=(description or f"Starts {job.name} for {what}.") + lane_note,
        metadata={
            "change_feed_tables": list(spec.tables),
            "change_feed_consumer": name,
            "change_feed_lane": f"{lane}/{lanes}",
        },
    )
    def _change_feed_sensor(
        context: SensorEvaluationContext, warehouse: WarehouseResource
    ) -> SensorResult:
        wait = wait_seconds if wait_seconds is not None else wait_seconds_from_env()

        def run_exists(batch: Batch, recorded_at: datetime) -> bool:
            try:
                instance = context.instance  # only opened when a batch must be looked up
            except DagsterInvariantViolationError:  # a context built without an instance
                return False
            return dagster_run_lookup(instance)(batch, recorded_at)

        result = evaluate_lane(
            lambda: warehouse.connect(autocommit=True),
            spec,
            this,
            context.cursor,
            wait,
            run_exists,
            spacing=spacing,
            grace_seconds=reemit_grace_seconds,
        )
        if not result.batches:
            return SensorResult(
                skip_reason=result.note
                or f"no change on {', '.join(spec.tables)} within {wait:.0f} s",
                cursor=result.cursor.to_json(),
            )
        for batch in result.batches:
            context.log.info(
                "%s batch %d: %d event(s) %d..%d%s",
                this.name,
                batch.batch_id,
                len(batch.event_ids),
                batch.event_ids[0],
                batch.event_ids[-1],
                " (emitted again: no run has it yet)" if batch.reemitted else "",
            )
        return SensorResult(
            run_requests=[run_request_for_batch(b, run_config) for b in result.batches],
            cursor=result.cursor.to_json(),
        )

    return _change_feed_sensor


def change_feed_sensors(
    name: str,
    tables: Sequence[str],
    operations: Sequence[str],
    job: JobDefinition | SensorTarget,
    wait_seconds: float | None = None,
    filter: str | None = None,  # noqa: A002 - the name callers expect
    max_events: int = DEFAULT_MAX_EVENTS,
    run_config: Mapping[str, Any] | None = None,
    description: str | None = None,
    *,
    lanes: int = DEFAULT_LANES,
    spacing_seconds: float | None = None,
    reemit_grace_seconds: float = DEFAULT_REEMIT_GRACE_SECONDS,
) -> list[SensorDefinition]:
    """The `lanes` sensors of the consumer `name` (`name`, `name_lane_2`, ...), first lane first."""
    if lanes < 1:
        raise ChangeFeedError(f"{name}: at least one lane")
    return [
        change_feed_sensor(
            name,
            tables,
            operations,
            job,
            wait_seconds=wait_seconds,
            filter=filter,
            max_events=max_events,
            run_config=run_config,
            description=description,
            lane=index,
            lanes=lanes,
            spacing_seconds=spacing_seconds,
            reemit_grace_seconds=reemit_grace_seconds,
        )
        for index in range(1, lanes + 1)
    ]
