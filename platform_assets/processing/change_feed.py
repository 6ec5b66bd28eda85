"""Read the change outbox (`ops.change_event`) exactly once per consumer, across crashes.

Why not a plain "last event id" cursor: ids are handed out when a row is inserted, but rows become
visible when their transaction commits, so a transaction holding id 10 can commit after the one
holding id 11. A consumer that moved past 11 would never see 10. Instead the cursor is a
transaction-id watermark plus the few events above it already delivered:

    {"xmin": "<xid8>", "seen": [<event ids with txid >= xmin already delivered>]}

A read runs in one REPEATABLE READ snapshot: everything it sees is committed, and every transaction
with an id below the snapshot's xmin has finished, so no event below that xmin can appear later.
The next read asks for `txid >= xmin AND id NOT IN seen`: each event is delivered exactly once, in
whatever order transactions commit, without waiting for a long transaction to finish.

Exactly-once *batches*: a batch is recorded in `ops.change_feed_batch` under the hash of the cursor
it was read from before it is returned. If the caller (a Dagster sensor) never stores the new cursor
because the process died, the next read from the same cursor gets the same batch back (same batch
id, so the same run key) instead of a bigger, different one.

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
    """Events handed to one run; re-emitted unchanged when read again from the same cursor."""

    consumer: str
    batch_id: int
    event_ids: tuple[int, ...]
    to_cursor: FeedCursor
    reemitted: bool = False

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


def read_events(conn: psycopg.Connection, spec: FeedSpec, cursor: FeedCursor) -> ReadResult:
    """Read the next events after `cursor` in one snapshot, without recording anything.

    The new cursor never passes an event that was not delivered: when `max_events` truncates the
    read, the watermark stops at the oldest transaction still holding an undelivered event.
    """
    _require_autocommit(conn)
    params = {
        "xmin": str(cursor.xmin),
        "tables": list(spec.tables),
        "operations": list(spec.operations),
        "exclude": list(cursor.seen),
        "limit": spec.max_events,
    }
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()
        assert row is not None
        snapshot_xmin = int(row[0])
        rows = conn.execute(
            f"""
            SELECT e.id, e.table_name, e.operation, e.row_key, e.txid::text, e.at
            FROM ops.change_event e
            WHERE {_where(spec)}
            ORDER BY e.id
            LIMIT %(limit)s
            """,
            params,
        ).fetchall()
        events = tuple(ChangeEvent(r[0], r[1], r[2], r[3], int(r[4]), r[5]) for r in rows)
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
    # A batch is only re-emitted to a consumer whose stored cursor is the one it was read from:
    # once the consumer's watermark is above it, it is history, kept a while for people.
    batches_deleted = conn.execute(
        """
        DELETE FROM ops.change_feed_batch b
        WHERE b.created_at < now() - %(keep)s
          AND (
            EXISTS (SELECT 1 FROM ops.change_feed_consumer c
                    WHERE c.consumer = b.consumer AND b.from_xmin < c.watermark)
            OR NOT (b.consumer = ANY(%(expected)s::text[]))
          )
        """,
        {"keep": keep_batches, "expected": expected},
    ).rowcount
    return PruneResult(events_deleted, batches_deleted, watermark, missing)


def replay_cursor(conn: psycopg.Connection, consumer: str, since: datetime) -> FeedCursor:
    """A cursor that re-delivers every event recorded since `since`, prepared for `consumer`.

    Forgets the consumer's recorded batches (otherwise the old cursor's batch would be re-emitted)
    and pins its position so pruning keeps the events until the sensor has read them. Stop the
    sensor first, then set the returned cursor on it and start it again.
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
        record_position(conn, consumer, cursor)
    return cursor


def backlog(conn: psycopg.Connection) -> list[tuple[str, int, int, datetime | None]]:
    """Per consumer: stored watermark, events at or above it, and when it last ticked."""
    return [
        (consumer, int(xmin), count, updated_at)
        for consumer, xmin, count, updated_at in conn.execute(
            """
            SELECT c.consumer, c.watermark::text,
                   (SELECT count(*) FROM ops.change_event e WHERE e.txid >= c.watermark),
                   c.updated_at
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
    replay = sub.add_parser("replay", help="print a cursor that re-delivers events since a time")
    replay.add_argument("consumer", help="the sensor name")
    replay.add_argument("--since", required=True, type=datetime.fromisoformat)
    args = parser.parse_args(argv)
    with psycopg.connect(resolve_database_urls().libpq, autocommit=True) as conn:
        if args.command == "status":
            for consumer, xmin, count, updated_at in backlog(conn):
                print(f"{consumer:<45} xmin={xmin:<12} backlog={count:<8} last tick {updated_at}")
            return 0
        cursor = replay_cursor(conn, args.consumer, args.since)
        print(cursor.to_json())
        print(
            f"set it with: dagster sensor cursor {args.consumer} --set '{cursor.to_json()}'",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
