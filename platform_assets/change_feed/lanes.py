"""Lanes: one position per consumer in the database, shared by the consumer's sensors.

A consumer (one reaction, e.g. new inputs -> orchestrator) is declared as several sensors, its
lanes. `claim_batch` locks the consumer's row (`SELECT ... FOR UPDATE`), reads from the position in
a snapshot taken after the lock, records the batch (with the lane and the lane's tick number) and
moves the position, in one transaction: two lanes never get the same event. A batch whose run never
appears in Dagster is emitted again with the same run key by the lane that emitted it
(`unconfirmed_batches`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from platform_assets.change_feed.feed import (
    Batch,
    ChangeFeedError,
    FeedCursor,
    FeedSpec,
    read_snapshot,
    require_autocommit,
)

if TYPE_CHECKING:
    import psycopg

# --- lanes: one position in the database, shared by a consumer's sensors ------------------------

LANE_SUFFIX = "_lane_"

log = logging.getLogger(__name__)


def lane_name(consumer: str, index: int) -> str:
    """Sensor name of lane `index` (1-based): the first lane keeps the consumer's name."""
    if index < 1:
        raise ChangeFeedError(f"lane numbers start at 1, not {index}")
    return consumer if index == 1 else f"{consumer}{LANE_SUFFIX}{index}"


@dataclass(frozen=True)
class Lane:
    """Lane `index` of the `count` lanes (sensors) of `consumer`."""

    consumer: str
    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ChangeFeedError(f"{self.consumer}: lane {self.index} of {self.count}")

    @property
    def name(self) -> str:
        return lane_name(self.consumer, self.index)

    @property
    def names(self) -> tuple[str, ...]:
        """Every lane of the consumer, the first one first."""
        return tuple(lane_name(self.consumer, i) for i in range(1, self.count + 1))

    @property
    def primary(self) -> bool:
        """The first lane: it adopts the batches of lanes that no longer exist."""
        return self.index == 1


@dataclass(frozen=True)
class Claim:
    """What a claim attempt got: a batch, or why not (another lane claimed too recently)."""

    batch: Batch | None = None
    retry_after: float | None = None
    """Seconds until this lane may claim: another lane claimed less than `spacing` ago."""
    adopted: tuple[int, ...] = ()
    """Recorded batches found at the position and never emitted: now this lane's, to check."""


_CONSUMER_ROW = """
    SELECT feed_cursor::text, watermark::text,
           extract(epoch FROM clock_timestamp() - last_claim_at)::float8
    FROM ops.change_feed_consumer WHERE consumer = %s FOR UPDATE
"""


def claim_batch(
    conn: psycopg.Connection,
    spec: FeedSpec,
    lane: Lane,
    tick: int,
    spacing: float = 0.0,
) -> Claim:
    """Claim the next batch of `spec.consumer` for `lane`, whose current tick is number `tick`.

    One transaction: lock the consumer's row, read from its position in a snapshot taken after
    the lock, record the batch (emitted by `lane` at `tick`) and move the position. Lanes of one
    consumer therefore never get the same event. With nothing new the position still moves (its
    watermark), which keeps `seen` short and lets pruning go on.

    `spacing`: claim only if the consumer's last claim is at least that many seconds old (else
    `retry_after`), so that a consumer's lanes take turns instead of all returning at once.
    """
    require_autocommit(conn)
    if lane.consumer != spec.consumer:
        raise ChangeFeedError(f"lane {lane.name} does not belong to consumer {spec.consumer}")
    with conn.transaction():
        # READ COMMITTED: each statement's snapshot is taken after the lock below was granted,
        # so the read sees the position (and events) the previous lane committed.
        conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        row = conn.execute(_CONSUMER_ROW, (spec.consumer,)).fetchone()
        if row is None:  # a new consumer: from the start of the feed
            start = FeedCursor()
            conn.execute(
                """
                INSERT INTO ops.change_feed_consumer (consumer, watermark, feed_cursor, updated_at)
                VALUES (%s, %s::xid8, %s::jsonb, now())
                ON CONFLICT (consumer) DO NOTHING
                """,
                (spec.consumer, str(start.xmin), start.to_json()),
            )
            row = conn.execute(_CONSUMER_ROW, (spec.consumer,)).fetchone()
            assert row is not None
        raw, watermark, since_last = row
        if raw is not None:
            cursor = FeedCursor.parse(raw)
        else:  # a row written by pruning only: start at its watermark
            cursor = FeedCursor(int(watermark))
            if cursor.xmin:
                log.warning(
                    "%s: no position recorded; starting at watermark %s "
                    "(events above it already delivered may come again)",
                    spec.consumer,
                    watermark,
                )
        if spacing > 0 and since_last is not None and since_last < spacing:
            return Claim(retry_after=spacing - since_last)

        # A batch recorded from this very position: the position was set back (or comes from a
        # caller-held cursor whose tick never completed). Step over it; one never emitted is now
        # this lane's, and is emitted if no run has its key.
        adopted: list[int] = []
        for _ in range(10_000):
            previous = conn.execute(
                "SELECT batch_id, to_cursor::text, emitted_by FROM ops.change_feed_batch "
                "WHERE consumer = %s AND from_cursor_sha = %s",
                (spec.consumer, cursor.sha),
            ).fetchone()
            if previous is None:
                break
            if previous[2] is None:
                conn.execute(
                    "UPDATE ops.change_feed_batch SET emitted_by = %s, emitted_tick = NULL, "
                    "emitted_at = created_at WHERE batch_id = %s",
                    (lane.name, previous[0]),
                )
                adopted.append(previous[0])
            cursor = FeedCursor.parse(previous[1])

        result = read_snapshot(conn, spec, cursor)
        batch: Batch | None = None
        if result.events:
            ids = [e.id for e in result.events]
            inserted = conn.execute(
                """
                INSERT INTO ops.change_feed_batch
                    (consumer, from_cursor_sha, from_xmin, to_cursor, event_count,
                     first_event_id, last_event_id, event_ids,
                     emitted_by, emitted_tick, emitted_at, emissions)
                VALUES (%s, %s, %s::xid8, %s::jsonb, %s, %s, %s, %s::bigint[],
                        %s, %s, clock_timestamp(), 1)
                RETURNING batch_id
                """,
                (
                    spec.consumer,
                    cursor.sha,
                    str(cursor.xmin),
                    result.cursor.to_json(),
                    len(ids),
                    ids[0],
                    ids[-1],
                    ids,
                    lane.name,
                    tick,
                ),
            ).fetchone()
            assert inserted is not None
            batch = Batch(spec.consumer, inserted[0], tuple(ids), result.cursor, lane=lane.name)
        conn.execute(
            """
            UPDATE ops.change_feed_consumer
            SET feed_cursor = %s::jsonb, watermark = %s::xid8, updated_at = now(),
                last_claim_at = CASE WHEN %s THEN clock_timestamp() ELSE last_claim_at END
            WHERE consumer = %s
            """,
            (result.cursor.to_json(), str(result.cursor.xmin), batch is not None, spec.consumer),
        )
    return Claim(batch=batch, adopted=tuple(adopted))


def consumer_position(conn: psycopg.Connection, consumer: str) -> FeedCursor | None:
    """The shared position of a consumer's lanes (None before its first claim)."""
    row = conn.execute(
        "SELECT feed_cursor::text FROM ops.change_feed_consumer WHERE consumer = %s", (consumer,)
    ).fetchone()
    return FeedCursor.parse(row[0]) if row and row[0] is not None else None


@dataclass(frozen=True)
class Unconfirmed:
    """A batch a lane emitted and no Dagster run is known for yet."""

    batch: Batch
    created_at: datetime
    emitted_tick: int | None
    emitted_by: str


def unconfirmed_batches(
    conn: psycopg.Connection,
    lane: Lane,
    stored_tick: int,
    grace: timedelta,
    limit: int = 100,
) -> list[Unconfirmed]:
    """The batches `lane` must look up in Dagster: emitted, no run seen yet, and either

    - emitted by a tick of this lane Dagster never completed (its number is above `stored_tick`,
      the one in the lane's stored cursor): the run request may never have reached Dagster;
    - emitted more than `grace` ago: Dagster got the request but no run has appeared (submission
      failed, or the sensor was evaluated outside the daemon);
    - adopted (no tick number).

    Only the emitting lane looks at its batches: Dagster de-duplicates run keys per sensor, and
    resumes a half-submitted tick of that sensor before evaluating it again. The first lane also
    takes the batches of lanes that no longer exist.
    """
    rows = conn.execute(
        """
        SELECT batch_id, to_cursor::text, event_ids, created_at, emitted_tick, emitted_by
        FROM ops.change_feed_batch
        WHERE consumer = %(consumer)s
          AND run_seen_at IS NULL AND emitted_by IS NOT NULL
          AND (emitted_by = %(lane)s
               OR (%(primary)s AND NOT (emitted_by = ANY(%(lanes)s::text[]))))
          AND (emitted_tick IS NULL OR emitted_tick > %(tick)s
               OR emitted_at < clock_timestamp() - %(grace)s)
        ORDER BY batch_id
        LIMIT %(limit)s
        """,
        {
            "consumer": lane.consumer,
            "lane": lane.name,
            "primary": lane.primary,
            "lanes": list(lane.names),
            "tick": stored_tick,
            "grace": grace,
            "limit": limit,
        },
    ).fetchall()
    return [
        Unconfirmed(
            batch=Batch(
                lane.consumer,
                batch_id,
                tuple(event_ids),
                FeedCursor.parse(to_cursor),
                reemitted=True,
                lane=lane.name,
            ),
            created_at=created_at,
            emitted_tick=emitted_tick,
            emitted_by=emitted_by,
        )
        for batch_id, to_cursor, event_ids, created_at, emitted_tick, emitted_by in rows
    ]


def mark_run_seen(conn: psycopg.Connection, batch_ids: Sequence[int]) -> None:
    """A Dagster run exists for these batches: never look them up again."""
    if batch_ids:
        conn.execute(
            "UPDATE ops.change_feed_batch SET run_seen_at = now() "
            "WHERE batch_id = ANY(%s::bigint[]) AND run_seen_at IS NULL",
            (list(batch_ids),),
        )


def mark_emitted(conn: psycopg.Connection, batch_id: int, lane: Lane, tick: int) -> bool:
    """Record that `lane` emits the batch again at `tick`; False if it is not (or no longer) its."""
    row = conn.execute(
        """
        UPDATE ops.change_feed_batch
        SET emitted_by = %(lane)s, emitted_tick = %(tick)s, emitted_at = clock_timestamp(),
            emissions = emissions + 1
        WHERE batch_id = %(batch)s AND consumer = %(consumer)s AND run_seen_at IS NULL
          AND (emitted_by = %(lane)s
               OR (%(primary)s AND NOT (emitted_by = ANY(%(lanes)s::text[]))))
        RETURNING batch_id
        """,
        {
            "lane": lane.name,
            "tick": tick,
            "batch": batch_id,
            "consumer": lane.consumer,
            "primary": lane.primary,
            "lanes": list(lane.names),
        },
    ).fetchone()
    return row is not None
