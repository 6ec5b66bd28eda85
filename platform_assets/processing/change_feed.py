"""Read the change outbox (`ops.change_event`) exactly once per consumer, across crashes.

Why not a plain "last event id" cursor: ids are handed out when a row is inserted, but rows become
visible when their transaction commits, so a transaction holding id 10 can commit after the one
holding id 11. A consumer that moved past 11 would never see 10. Instead the cursor is a
transaction-id watermark plus the few events above it already delivered:

    {"xmin": "<xid8>", "seen": [<event ids with txid >= xmin already delivered>]}

A read runs in one snapshot: everything it sees is committed, and every transaction with an id
below the snapshot's xmin has finished, so no event below that xmin can appear later. The next read
asks for `txid >= xmin AND id NOT IN seen`: each event is delivered exactly once, in whatever order
transactions commit, without waiting for a long transaction to finish.

Two ways to hold a consumer's position:

- **Lanes** (`claim_batch`, what the sensors use): the position is `ops.change_feed_consumer
  .feed_cursor`, shared by the consumer's lanes (several sensors of one reaction). A claim locks the
  consumer's row (`SELECT ... FOR UPDATE`), reads from the position in a snapshot taken after the
  lock, records the batch (with the lane and the lane's tick number) and moves the position, in one
  transaction: two lanes never get the same event. A batch whose run never appears in Dagster is
  emitted again with the same run key by the lane that emitted it (`unconfirmed_batches`).
- **A caller-held cursor** (`next_batch`, the single-sensor design kept for comparison): a batch is
  recorded in `ops.change_feed_batch` under the hash of the cursor it was read from before it is
  returned. If the caller never stores the new cursor (the process died), the next read from the
  same cursor gets the same batch back (same batch id, so the same run key).

Every function takes an *autocommit* psycopg 3 connection: each runs its own short transactions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "fishnet_changes"
"""The LISTEN/NOTIFY channel; the payload is the schema-qualified table name."""

DEFAULT_MAX_EVENTS = 10_000


class ChangeFeedError(RuntimeError):
    """The change feed cannot be read as asked (bad cursor, wrong connection mode)."""


@dataclass(frozen=True)
class FeedCursor:
    """A consumer's position: the xid8 watermark and the delivered events at or above it."""

    xmin: int = 0
    seen: tuple[int, ...] = ()

    @classmethod
    def parse(cls, raw: str | None) -> FeedCursor:
        """Read a stored cursor; None or empty is the start of the feed."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(xmin=int(data["xmin"]), seen=tuple(sorted({int(i) for i in data["seen"]})))
        except (ValueError, KeyError, TypeError) as exc:
            raise ChangeFeedError(f"not a change-feed cursor: {raw[:200]!r} ({exc})") from exc

    def to_json(self) -> str:
        """Canonical JSON (xmin as a string: xid8 can exceed what JSON readers keep exact)."""
        return json.dumps(
            {"xmin": str(self.xmin), "seen": sorted(self.seen)}, separators=(",", ":")
        )

    @property
    def sha(self) -> str:
        """Identity of this position, the key of the batch read from it."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()


@dataclass(frozen=True)
class FeedSpec:
    """What a consumer reads: tables (`schema.table`), operations, and an optional SQL predicate.

    `filter_sql` is a boolean SQL expression over the event, aliased `e` (for example
    `EXISTS (SELECT 1 FROM processing.product p WHERE p.id = e.row_key AND ...)`). It is evaluated
    in the read's snapshot; an event it rejects is skipped for good once the watermark passes it.
    """

    consumer: str
    tables: tuple[str, ...]
    operations: tuple[str, ...] = ("INSERT",)
    filter_sql: str | None = None
    max_events: int = DEFAULT_MAX_EVENTS

    def __post_init__(self) -> None:
        if not self.tables:
            raise ChangeFeedError(f"consumer {self.consumer!r} reads no table")
        if self.max_events < 1:
            raise ChangeFeedError(f"consumer {self.consumer!r}: max_events must be at least 1")
        bad = [op for op in self.operations if op not in ("INSERT", "UPDATE")]
        if bad:
            raise ChangeFeedError(f"consumer {self.consumer!r}: unknown operations {bad}")


@dataclass(frozen=True)
class ChangeEvent:
    """One changed row."""

    id: int
    table_name: str
    operation: str
    row_key: int
    txid: int
    at: datetime


@dataclass(frozen=True)
class Batch:
    """Events handed to one run; whenever emitted again, it keeps its batch id and run key."""

    consumer: str
    batch_id: int
    event_ids: tuple[int, ...]
    to_cursor: FeedCursor
    reemitted: bool = False
    lane: str | None = None
    """The lane (sensor name) that emits it; None for a batch read with a caller-held cursor."""

    @property
    def run_key(self) -> str:
        """Unique per consumer and batch: Dagster never starts two runs for one key."""
        return f"{self.consumer}:{self.batch_id}"


@dataclass(frozen=True)
class ReadResult:
    """The outcome of a read: the batch to emit (if any) and the cursor to store."""

    cursor: FeedCursor
    batch: Batch | None = None
    events: tuple[ChangeEvent, ...] = field(default=(), repr=False)


def _require_autocommit(conn: psycopg.Connection) -> None:
    if not conn.autocommit:
        raise ChangeFeedError(
            "the change feed needs an autocommit connection (it runs its own transactions)"
        )


def _where(spec: FeedSpec) -> str:
    # psycopg reads % as a placeholder marker
    predicate = (spec.filter_sql or "TRUE").replace("%", "%%")
    return f"""
        e.txid >= %(xmin)s::xid8
        AND e.table_name = ANY(%(tables)s::text[])
        AND e.operation = ANY(%(operations)s::text[])
        AND NOT (e.id = ANY(%(exclude)s::bigint[]))
        AND ({predicate})
    """


def _read(conn: psycopg.Connection, spec: FeedSpec, cursor: FeedCursor) -> ReadResult:
    """Read after `cursor` in the current transaction (REPEATABLE READ, or READ COMMITTED).

    The events and the snapshot xmin come from one statement, hence one snapshot, whatever the
    isolation level. The later statements may see a newer snapshot, which is harmless: an event
    only they see belongs to a transaction that was running at the first snapshot, so its txid is
    at or above that snapshot's xmin, and the watermark never goes above that xmin.
    """
    params = {
        "xmin": str(cursor.xmin),
        "tables": list(spec.tables),
        "operations": list(spec.operations),
        "exclude": list(cursor.seen),
        "limit": spec.max_events,
    }
    rows = conn.execute(
        f"""
        WITH snap AS MATERIALIZED (
            SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin
        )
        SELECT snap.xmin, e.id, e.table_name, e.operation, e.row_key, e.txid::text, e.at
        FROM snap
        LEFT JOIN LATERAL (
            SELECT e.* FROM ops.change_event e
            WHERE {_where(spec)}
            ORDER BY e.id
            LIMIT %(limit)s
        ) e ON true
        ORDER BY e.id
        """,
        params,
    ).fetchall()
    snapshot_xmin = int(rows[0][0])
    events = tuple(
        ChangeEvent(r[1], r[2], r[3], r[4], int(r[5]), r[6]) for r in rows if r[1] is not None
    )
    watermark = snapshot_xmin
    if len(events) == spec.max_events:
        # Truncated: events we did not return may sit in transactions older than the snapshot
        # xmin; the watermark must stay at or below the oldest of them.
        undelivered = conn.execute(
            f"SELECT min(e.txid)::text FROM ops.change_event e WHERE {_where(spec)}",
            {**params, "exclude": [*cursor.seen, *(e.id for e in events)]},
        ).fetchone()
        if undelivered is not None and undelivered[0] is not None:
            watermark = min(watermark, int(undelivered[0]))
    new_xmin = max(cursor.xmin, watermark)
    seen_txids: dict[int, int] = {}
    if cursor.seen:
        for event_id, txid in conn.execute(
            "SELECT id, txid::text FROM ops.change_event WHERE id = ANY(%s::bigint[])",
            (list(cursor.seen),),
        ):
            seen_txids[event_id] = int(txid)
    seen_txids.update((e.id, e.txid) for e in events)
    # Delivered events below the new watermark can no longer match `txid >= xmin`; a seen event
    # missing from the table was pruned, which only happens below every consumer's watermark.
    seen = tuple(sorted(i for i, txid in seen_txids.items() if txid >= new_xmin))
    return ReadResult(cursor=FeedCursor(new_xmin, seen), events=events)


def read_events(conn: psycopg.Connection, spec: FeedSpec, cursor: FeedCursor) -> ReadResult:
    """Read the next events after `cursor` in one snapshot, without recording anything.

    The new cursor never passes an event that was not delivered: when `max_events` truncates the
    read, the watermark stops at the oldest transaction still holding an undelivered event.
    """
    _require_autocommit(conn)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _read(conn, spec, cursor)


def _batch_from_row(consumer: str, row: Sequence, reemitted: bool) -> Batch:
    batch_id, to_cursor, event_ids = row
    raw = to_cursor if isinstance(to_cursor, str) else json.dumps(to_cursor)
    return Batch(consumer, batch_id, tuple(event_ids), FeedCursor.parse(raw), reemitted)


def recorded_batch(conn: psycopg.Connection, consumer: str, cursor: FeedCursor) -> Batch | None:
    """The batch already read from `cursor` by `consumer`, if any."""
    row = conn.execute(
        "SELECT batch_id, to_cursor, event_ids FROM ops.change_feed_batch "
        "WHERE consumer = %s AND from_cursor_sha = %s",
        (consumer, cursor.sha),
    ).fetchone()
    return _batch_from_row(consumer, row, reemitted=True) if row else None


def next_batch(conn: psycopg.Connection, spec: FeedSpec, cursor: FeedCursor) -> ReadResult:
    """The batch to emit from `cursor`: the one recorded earlier from it, else a new read.

    A new non-empty read is recorded before it is returned. With no new event the result has no
    batch and a cursor that may have advanced (storing it or not changes nothing).
    """
    _require_autocommit(conn)
    previous = recorded_batch(conn, spec.consumer, cursor)
    if previous is not None:
        return ReadResult(cursor=previous.to_cursor, batch=previous)
    result = read_events(conn, spec, cursor)
    if not result.events:
        return result
    ids = [e.id for e in result.events]
    row = conn.execute(
        """
        INSERT INTO ops.change_feed_batch
            (consumer, from_cursor_sha, from_xmin, to_cursor, event_count,
             first_event_id, last_event_id, event_ids)
        VALUES (%s, %s, %s::xid8, %s::jsonb, %s, %s, %s, %s::bigint[])
        ON CONFLICT (consumer, from_cursor_sha) DO NOTHING
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
        ),
    ).fetchone()
    if row is None:  # another evaluation from the same cursor won the race: emit its batch
        previous = recorded_batch(conn, spec.consumer, cursor)
        assert previous is not None
        return ReadResult(cursor=previous.to_cursor, batch=previous)
    batch = Batch(spec.consumer, row[0], tuple(ids), result.cursor)
    return ReadResult(cursor=result.cursor, batch=batch, events=result.events)


def record_position(conn: psycopg.Connection, consumer: str, cursor: FeedCursor) -> None:
    """Remember the watermark a consumer has durably stored; pruning never goes past it."""
    conn.execute(
        """
        INSERT INTO ops.change_feed_consumer (consumer, watermark, updated_at)
        VALUES (%s, %s::xid8, now())
        ON CONFLICT (consumer) DO UPDATE SET watermark = EXCLUDED.watermark, updated_at = now()
        """,
        (consumer, str(cursor.xmin)),
    )


# --- lanes: one position in the database, shared by a consumer's sensors ------------------------

LANE_SUFFIX = "_lane_"


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
        """The first lane: it moves a pre-lanes position in, and adopts batches of removed lanes."""
        return self.index == 1


@dataclass(frozen=True)
class Claim:
    """What a claim attempt got: a batch, or why not (spacing, a position not moved in yet)."""

    batch: Batch | None = None
    retry_after: float | None = None
    """Seconds until this lane may claim: another lane claimed less than `spacing` ago."""
    blocked: str | None = None
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
    legacy: FeedCursor | None = None,
) -> Claim:
    """Claim the next batch of `spec.consumer` for `lane`, whose current tick is number `tick`.

    One transaction: lock the consumer's row, read from its position in a snapshot taken after
    the lock, record the batch (emitted by `lane` at `tick`) and move the position. Lanes of one
    consumer therefore never get the same event. With nothing new the position still moves (its
    watermark), which keeps `seen` short and lets pruning go on.

    `spacing`: claim only if the consumer's last claim is at least that many seconds old (else
    `retry_after`), so that a consumer's lanes take turns instead of all returning at once.
    `legacy`: the position from before lanes (the first lane's Dagster cursor); only the first
    lane moves it in, the others wait for that.
    """
    _require_autocommit(conn)
    if lane.consumer != spec.consumer:
        raise ChangeFeedError(f"lane {lane.name} does not belong to consumer {spec.consumer}")
    with conn.transaction():
        # READ COMMITTED: each statement's snapshot is taken after the lock below was granted,
        # so the read sees the position (and events) the previous lane committed.
        conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        row = conn.execute(_CONSUMER_ROW, (spec.consumer,)).fetchone()
        if row is None:  # a new consumer: from the start of the feed (or the first lane's cursor)
            start = legacy if lane.primary and legacy is not None else FeedCursor()
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
        elif not lane.primary:
            return Claim(blocked=f"waiting for {lane.names[0]} to move the position in")
        elif legacy is not None:
            cursor = legacy
        else:
            cursor = FeedCursor(int(watermark))
            if cursor.xmin:
                log.warning(
                    "%s: no position and no cursor from before lanes; starting at watermark %s "
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

        result = _read(conn, spec, cursor)
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


@dataclass(frozen=True)
class PruneResult:
    """What a pruning pass did, and why it kept the events if it did."""

    events_deleted: int
    batches_deleted: int
    watermark: int | None
    missing_consumers: tuple[str, ...] = ()


def prune(
    conn: psycopg.Connection,
    expected_consumers: Iterable[str],
    keep_batches: timedelta = timedelta(days=1),
) -> PruneResult:
    """Delete events every expected consumer has passed, and batches no cursor can come back to.

    Nothing is deleted from the outbox while an expected consumer has never recorded a position:
    a new or renamed sensor would otherwise lose what happened before its first tick.
    """
    _require_autocommit(conn)
    expected = sorted(set(expected_consumers))
    positions: dict[str, str] = dict(
        conn.execute(
            "SELECT consumer, watermark::text FROM ops.change_feed_consumer "
            "WHERE consumer = ANY(%s::text[])",
            (expected,),
        ).fetchall()
    )
    missing = tuple(c for c in expected if c not in positions)
    events_deleted = 0
    watermark: int | None = None
    if expected and not missing:
        watermark = min(int(x) for x in positions.values())
        events_deleted = conn.execute(
            "DELETE FROM ops.change_event WHERE txid < %s::xid8", (str(watermark),)
        ).rowcount
    # A batch read with a caller-held cursor is only re-emitted to a consumer whose stored cursor
    # is the one it was read from: once the consumer's watermark is above it, it is history, kept a
    # while for people. A lane's batch with no run seen yet may still be emitted again: kept.
    batches_deleted = conn.execute(
        """
        DELETE FROM ops.change_feed_batch b
        WHERE b.created_at < now() - %(keep)s
          AND (
            NOT (b.consumer = ANY(%(expected)s::text[]))
            OR (
              EXISTS (SELECT 1 FROM ops.change_feed_consumer c
                      WHERE c.consumer = b.consumer AND b.from_xmin < c.watermark)
              AND NOT (b.run_seen_at IS NULL AND b.emitted_by IS NOT NULL)
            )
          )
        """,
        {"keep": keep_batches, "expected": expected},
    ).rowcount
    return PruneResult(events_deleted, batches_deleted, watermark, missing)


def replay_cursor(conn: psycopg.Connection, consumer: str, since: datetime) -> FeedCursor:
    """Set `consumer` back so that it delivers again every event recorded since `since`.

    The position is the consumer's (`feed_cursor`, shared by its lanes): they re-deliver from it at
    their next tick, with new run keys. The consumer's recorded batches are forgotten (a batch
    read from the same position would be stepped over), and the watermark moves with it, so
    pruning keeps the events until they are read. Returns the new position.
    """
    _require_autocommit(conn)
    with conn.transaction():
        row = conn.execute(
            "SELECT min(txid)::text FROM ops.change_event WHERE at >= %s", (since,)
        ).fetchone()
        if row is None or row[0] is None:
            snap = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()
            assert snap is not None
            cursor = FeedCursor(int(snap[0]))
        else:
            cursor = FeedCursor(int(row[0]))
        conn.execute("DELETE FROM ops.change_feed_batch WHERE consumer = %s", (consumer,))
        conn.execute(
            """
            INSERT INTO ops.change_feed_consumer (consumer, watermark, feed_cursor, updated_at)
            VALUES (%(consumer)s, %(xmin)s::xid8, %(cursor)s::jsonb, now())
            ON CONFLICT (consumer) DO UPDATE
            SET watermark = EXCLUDED.watermark, feed_cursor = EXCLUDED.feed_cursor,
                last_claim_at = NULL, updated_at = now()
            """,
            {"consumer": consumer, "xmin": str(cursor.xmin), "cursor": cursor.to_json()},
        )
    return cursor


@dataclass(frozen=True)
class ConsumerStatus:
    """Where a consumer stands."""

    consumer: str
    watermark: int
    backlog: int
    updated_at: datetime | None
    last_claim_at: datetime | None
    unconfirmed_batches: int


def backlog(conn: psycopg.Connection) -> list[ConsumerStatus]:
    """Per consumer: watermark, events at or above it, last update and claim, unconfirmed batches."""
    return [
        ConsumerStatus(consumer, int(xmin), count, updated_at, last_claim_at, unconfirmed)
        for consumer, xmin, count, updated_at, last_claim_at, unconfirmed in conn.execute(
            """
            SELECT c.consumer, c.watermark::text,
                   (SELECT count(*) FROM ops.change_event e WHERE e.txid >= c.watermark),
                   c.updated_at, c.last_claim_at,
                   (SELECT count(*) FROM ops.change_feed_batch b
                    WHERE b.consumer = c.consumer AND b.run_seen_at IS NULL
                      AND b.emitted_by IS NOT NULL)
            FROM ops.change_feed_consumer c ORDER BY c.consumer
            """
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m platform_assets.processing.change_feed status|replay ...` for operators."""
    from resources.warehouse import resolve_database_urls

    parser = argparse.ArgumentParser(prog="python -m platform_assets.processing.change_feed")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="consumer positions and their backlog")
    replay = sub.add_parser("replay", help="set a consumer back to re-deliver events since a time")
    replay.add_argument("consumer", help="the consumer (its first lane's sensor name)")
    replay.add_argument("--since", required=True, type=datetime.fromisoformat)
    args = parser.parse_args(argv)
    with psycopg.connect(resolve_database_urls().libpq, autocommit=True) as conn:
        if args.command == "status":
            for s in backlog(conn):
                print(
                    f"{s.consumer:<45} xmin={s.watermark:<12} backlog={s.backlog:<8} "
                    f"unconfirmed={s.unconfirmed_batches:<4} last claim {s.last_claim_at} "
                    f"last tick {s.updated_at}"
                )
            return 0
        cursor = replay_cursor(conn, args.consumer, args.since)
        print(cursor.to_json())
        print(
            f"{args.consumer}: its lanes re-deliver from there at their next tick",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
