"""Sensors that react to database changes through the change outbox, within a second.

A tick LISTENs on `fishnet_changes` first, then reads the outbox from its cursor; with nothing
new it waits for a notification (up to `wait_seconds`, well under Dagster's 60 s sensor timeout)
and reads again. The notification is only a wake-up: the outbox and the cursor are what make the
feed lossless, so a daemon that was down finds everything that happened meanwhile.

Each batch becomes one run request whose run key is `<sensor name>:<batch id>`; the jobs are
state-based (they act on every row that needs it), so a run only carries the batch id in a tag.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations (config and
# resource parameters) when the definitions are built.
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from dagster import (
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from platform_assets.processing.change_feed import (
    CHANNEL,
    DEFAULT_MAX_EVENTS,
    FeedCursor,
    FeedSpec,
    ReadResult,
    next_batch,
    record_position,
)
from resources.warehouse import WarehouseResource

log = logging.getLogger(__name__)

WAIT_SECONDS_ENV = "FISHNET_SENSOR_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 20.0
"""Long enough that most changes arrive while a tick listens, far below the 60 s gRPC timeout."""

BATCH_TAG = "fishnet/change_batch"
CONSUMER_TAG = "fishnet/change_consumer"
EVENTS_TAG = "fishnet/change_events"

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
# `define_asset_job` returns a class Dagster does not export: anything with a `name` that
# `@sensor(job=...)` accepts.
SensorTarget = Any


def wait_seconds_from_env(default: float = DEFAULT_WAIT_SECONDS) -> float:
    """`FISHNET_SENSOR_WAIT_SECONDS`, read at tick time so it can change without a redeploy."""
    raw = os.environ.get(WAIT_SECONDS_ENV, "").strip()
    if not raw:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError:
        log.warning("ignoring %s=%r: not a number", WAIT_SECONDS_ENV, raw)
        return default


def _wait_for_change(conn: psycopg.Connection, tables: Sequence[str], timeout: float) -> bool:
    """Block until a notification names one of `tables` or `timeout` passes; True if one did."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        for notify in conn.notifies(timeout=remaining, stop_after=1):
            if notify.payload in tables:
                return True
    return False


def evaluate_feed(
    connect: Connect,
    spec: FeedSpec,
    raw_cursor: str | None,
    wait_seconds: float,
) -> ReadResult:
    """One sensor tick without Dagster: the batch to emit (if any) and the cursor to store.

    Always reads from the incoming cursor (the one Dagster stored), so a batch is recorded under
    the cursor a retried tick will present again.
    """
    cursor = FeedCursor.parse(raw_cursor)
    with connect() as conn:
        record_position(conn, spec.consumer, cursor)
        # LISTEN before the first read: a change committed after the read's snapshot notifies us.
        conn.execute(f"LISTEN {CHANNEL}")
        deadline = time.monotonic() + wait_seconds
        while True:
            result = next_batch(conn, spec, cursor)
            remaining = deadline - time.monotonic()
            if result.batch is not None or remaining <= 0:
                return result
            if not _wait_for_change(conn, spec.tables, remaining):
                return result


def run_request_for(result: ReadResult, run_config: Mapping[str, Any] | None = None) -> RunRequest:
    """The run request of a batch: its run key makes a re-emitted batch start no second run."""
    batch = result.batch
    assert batch is not None
    return RunRequest(
        run_key=batch.run_key,
        run_config=dict(run_config or {}),
        tags={
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
) -> SensorDefinition:
    """A RUNNING sensor starting `job` once per batch of `operations` on `tables`.

    `tables` are schema-qualified (`processing.input`); `filter` is an optional SQL predicate over
    the event aliased `e`; `wait_seconds` overrides FISHNET_SENSOR_WAIT_SECONDS (default 20 s).
    The sensor name is the consumer name in `ops.change_feed_consumer` and in run keys.
    """
    spec = FeedSpec(
        consumer=name,
        tables=tuple(tables),
        operations=tuple(op.upper() for op in operations),
        filter_sql=filter,
        max_events=max_events,
    )

    @sensor(
        name=name,
        job=job,
        minimum_interval_seconds=1,
        default_status=DefaultSensorStatus.RUNNING,
        description=description
        or f"Starts {job.name} for each batch of {'/'.join(spec.operations)} on {', '.join(spec.tables)}.",
        metadata={"change_feed_tables": list(spec.tables)},
    )
    def _change_feed_sensor(
        context: SensorEvaluationContext, warehouse: WarehouseResource
    ) -> SensorResult:
        wait = wait_seconds if wait_seconds is not None else wait_seconds_from_env()
        result = evaluate_feed(
            lambda: warehouse.connect(autocommit=True), spec, context.cursor, wait
        )
        if result.batch is None:
            return SensorResult(
                skip_reason=f"no change on {', '.join(spec.tables)} within {wait:.0f} s",
                cursor=result.cursor.to_json(),
            )
        batch = result.batch
        context.log.info(
            "%s batch %d: %d event(s) %d..%d%s",
            name,
            batch.batch_id,
            len(batch.event_ids),
            batch.event_ids[0],
            batch.event_ids[-1],
            " (re-emitted: its cursor was not stored last time)" if batch.reemitted else "",
        )
        return SensorResult(
            run_requests=[run_request_for(result, run_config)], cursor=batch.to_cursor.to_json()
        )

    return _change_feed_sensor
