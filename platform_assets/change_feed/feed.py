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

The position of a consumer lives in the database and is moved by `lanes.claim_batch`, the one read
path of the sensors. Every function takes an *autocommit* psycopg 3 connection: each runs its own
short transactions.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


def require_autocommit(conn: psycopg.Connection) -> None:
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


def read_snapshot(conn: psycopg.Connection, spec: FeedSpec, cursor: FeedCursor) -> ReadResult:
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
    require_autocommit(conn)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return read_snapshot(conn, spec, cursor)


def batch_from_row(consumer: str, row: Sequence, reemitted: bool) -> Batch:
    batch_id, to_cursor, event_ids = row
    raw = to_cursor if isinstance(to_cursor, str) else json.dumps(to_cursor)
    return Batch(consumer, batch_id, tuple(event_ids), FeedCursor.parse(raw), reemitted)
