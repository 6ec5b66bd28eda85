"""Keeping the outbox small and letting operators rewind: prune, replay, backlog."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from platform_assets.change_feed.feed import FeedCursor, require_autocommit

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


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

    Nothing is deleted from the outbox while an expected consumer has never claimed:
    a new or renamed sensor would otherwise lose what happened before its first tick.
    """
    require_autocommit(conn)
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
    # Once the consumer's watermark is above a batch's start it cannot be read again; it is history,
    # kept a while for people. A batch with no run seen yet may still be emitted again: kept.
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
    require_autocommit(conn)
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
