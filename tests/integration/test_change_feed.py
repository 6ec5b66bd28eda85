"""The change outbox and its reader on a real PostgreSQL: exactly once, whatever the commit order."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from platform_assets.change_feed import (
    CHANNEL,
    ChangeFeedError,
    FeedCursor,
    FeedSpec,
    Lane,
    claim_batch,
    consumer_position,
    lane_name,
    mark_run_seen,
    prune,
    read_events,
    replay_cursor,
    unconfirmed_batches,
)
from resources.warehouse import DatabaseUrls, WarehouseResource

INPUTS = FeedSpec(consumer="test_inputs", tables=("processing.input",))

_counter = iter(range(1, 10**9))


def insert_inputs(conn: psycopg.Connection, count: int = 1) -> list[int]:
    """Insert `count` inputs in one statement, as someone with psql would; their ids."""
    names = [f"S2B_MSIL2A_test_{next(_counter)}" for _ in range(count)]
    rows = conn.execute(
        """
        INSERT INTO processing.input (product_type, catalogue_id, name, source)
        SELECT 'S2MSI2A', n, n, 'catalogue' FROM unnest(%s::text[]) AS n
        RETURNING id
        """,
        (names,),
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def admin(warehouse: WarehouseResource) -> Iterator[psycopg.Connection]:
    """An autocommit connection for writes that commit at once, and for the reader."""
    with warehouse.connect(autocommit=True) as conn:
        yield conn


def drain(
    conn: psycopg.Connection, spec: FeedSpec, cursor: FeedCursor
) -> tuple[list[int], FeedCursor]:
    """Read until nothing is left; the row keys delivered, in order, and the final cursor."""
    keys: list[int] = []
    for _ in range(10_000):
        result = read_events(conn, spec, cursor)
        cursor = result.cursor
        if not result.events:
            return keys, cursor
        keys += [e.row_key for e in result.events]
    raise AssertionError("the feed never ran dry")


def test_one_event_per_row_one_notification_per_statement(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    with warehouse.connect(autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        three = insert_inputs(admin, 3)
        two = insert_inputs(admin, 2)
        admin.execute("UPDATE processing.input SET tile = '31TCJ' WHERE id = ANY(%s)", (three[:2],))
        # statements that change nothing record nothing and wake nobody
        admin.execute(
            "INSERT INTO processing.input (product_type, catalogue_id, name, source) "
            "SELECT product_type, catalogue_id, name, source FROM processing.input "
            "ON CONFLICT (catalogue_id) DO NOTHING"
        )
        admin.execute("UPDATE processing.input SET tile = 'x' WHERE false")
        admin.execute(f"SELECT pg_notify('{CHANNEL}', 'end-of-test')")

        payloads: list[str] = []
        deadline = time.monotonic() + 10
        while "end-of-test" not in payloads and time.monotonic() < deadline:
            payloads += [n.payload for n in listener.notifies(timeout=1, stop_after=1)]

    assert payloads == ["processing.input"] * 3 + ["end-of-test"]
    events = admin.execute(
        "SELECT table_name, operation, row_key FROM ops.change_event ORDER BY id"
    ).fetchall()
    assert events == (
        [("processing.input", "INSERT", k) for k in three + two]
        + [("processing.input", "UPDATE", k) for k in three[:2]]
    )


def test_out_of_order_commits_are_each_delivered_once(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    with warehouse.connect() as slow:  # transaction A: takes the lower event id, commits last
        (a,) = insert_inputs(slow, 1)
        (b,) = insert_inputs(admin, 1)  # transaction B: later id, committed first

        first = read_events(admin, INPUTS, FeedCursor())
        assert [e.row_key for e in first.events] == [b]
        # the watermark stays at or below A, which may still commit
        a_txid = int(slow.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
        assert first.cursor.xmin <= a_txid
        assert read_events(admin, INPUTS, first.cursor).events == ()
        slow.commit()

    second = read_events(admin, INPUTS, first.cursor)
    assert [e.row_key for e in second.events] == [a]
    assert read_events(admin, INPUTS, second.cursor).events == ()
    # once A finished the watermark passes both, and the cursor forgets what it no longer needs
    assert second.cursor.xmin > a_txid
    assert read_events(admin, INPUTS, second.cursor).cursor.seen == ()


def test_aborted_transactions_deliver_nothing(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    with warehouse.connect() as aborted:
        insert_inputs(aborted, 5)
        aborted.rollback()
    (kept,) = insert_inputs(admin, 1)
    keys, cursor = drain(admin, INPUTS, FeedCursor())
    assert keys == [kept]
    assert cursor.xmin > 0


def test_restart_from_a_stored_cursor(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    before = insert_inputs(admin, 4)
    keys, cursor = drain(admin, INPUTS, FeedCursor())
    assert keys == before
    stored = cursor.to_json()

    after = insert_inputs(admin, 2)
    with warehouse.connect(autocommit=True) as restarted:  # a new process, from the stored JSON
        keys, _ = drain(restarted, INPUTS, FeedCursor.parse(stored))
    assert keys == after


def test_cursor_json_round_trip_and_errors() -> None:
    cursor = FeedCursor(2**63 + 5, (9, 3))
    assert FeedCursor.parse(cursor.to_json()) == FeedCursor(2**63 + 5, (3, 9))
    assert cursor.to_json() == '{"xmin":"9223372036854775813","seen":[3,9]}'
    assert FeedCursor.parse(None) == FeedCursor.parse("") == FeedCursor(0, ())
    with pytest.raises(ChangeFeedError):
        FeedCursor.parse('{"last_id": 3}')


def test_a_position_set_back_steps_over_the_batch_recorded_from_it(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    (lane,) = lanes_of(INPUTS, 1)
    first_ids = insert_inputs(admin, 3)
    start = consumer_position(admin, INPUTS.consumer)
    first = claim_batch(admin, INPUTS, lane, tick=1).batch
    assert first is not None and not first.reemitted
    row_of = dict(admin.execute("SELECT id, row_key FROM ops.change_event").fetchall())
    assert [row_of[e] for e in first.event_ids] == first_ids

    insert_inputs(admin, 2)  # more events arrive, then the position is set back (a restore)
    admin.execute(
        "UPDATE ops.change_feed_consumer SET feed_cursor = %s::jsonb WHERE consumer = %s",
        ((start or FeedCursor()).to_json(), INPUTS.consumer),
    )
    following = claim_batch(admin, INPUTS, lane, tick=2).batch
    assert following is not None  # the recorded batch is stepped over, not read again
    assert len(following.event_ids) == 2
    assert set(following.event_ids).isdisjoint(first.event_ids)
    assert following.run_key != first.run_key
    assert claim_batch(admin, INPUTS, lane, tick=3).batch is None
    rows = admin.execute("SELECT count(*) FROM ops.change_feed_batch").fetchone()
    assert rows == (2,)


def test_claims_need_autocommit(warehouse: WarehouseResource) -> None:
    (lane,) = lanes_of(INPUTS, 1)
    with warehouse.connect() as conn, pytest.raises(ChangeFeedError, match="autocommit"):
        claim_batch(conn, INPUTS, lane, tick=1)


def test_limit_truncation_never_skips(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    spec = FeedSpec(consumer="small", tables=("processing.input",), max_events=2)
    with warehouse.connect() as slow:
        (held,) = insert_inputs(slow, 1)
        committed = [k for _ in range(3) for k in insert_inputs(admin, 1)]
        big = insert_inputs(admin, 5)  # one transaction larger than a read

        keys, cursor = drain(admin, spec, FeedCursor())
        assert keys == committed + big
        slow.commit()
    keys, cursor = drain(admin, spec, cursor)
    assert keys == [held]
    assert drain(admin, spec, cursor)[0] == []


def test_truncated_read_keeps_the_watermark_below_undelivered_events(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    spec = FeedSpec(consumer="tiny", tables=("processing.input",), max_events=1)
    first, second = insert_inputs(admin, 1), insert_inputs(admin, 1)
    result = read_events(admin, spec, FeedCursor())
    assert [e.row_key for e in result.events] == first
    second_txid = admin.execute(
        "SELECT txid::text FROM ops.change_event WHERE row_key = %s", (second[0],)
    ).fetchone()
    assert result.cursor.xmin <= int(second_txid[0])
    assert [e.row_key for e in read_events(admin, spec, result.cursor).events] == second


def test_concurrent_writers_each_event_exactly_once(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    """Writers commit and abort in random order while a reader with small batches keeps up."""
    committed: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        with warehouse.connect() as conn:
            for _ in range(25):
                ids = insert_inputs(conn, rng.randint(1, 8))
                time.sleep(rng.random() * 0.02)  # hold the transaction open: commits reorder
                if rng.random() < 0.15:
                    conn.rollback()
                else:
                    conn.commit()
                    with lock:
                        committed.extend(ids)

    spec = FeedSpec(consumer="stress", tables=("processing.input",), max_events=7)
    (lane,) = lanes_of(spec, 1)
    delivered: list[int] = []
    tick = 0
    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads) or not stop.is_set():
        if not any(t.is_alive() for t in threads):
            stop.set()  # one more full drain after the last commit
        tick += 1
        batch = claim_batch(admin, spec, lane, tick=tick).batch
        if batch is not None:
            row_of = dict(
                admin.execute(
                    "SELECT id, row_key FROM ops.change_event WHERE id = ANY(%s)",
                    (list(batch.event_ids),),
                ).fetchall()
            )
            delivered += [row_of[e] for e in batch.event_ids]
    delivered += claim_all(admin, spec, lane)

    duplicates = [k for k, n in Counter(delivered).items() if n > 1]
    assert duplicates == []
    assert sorted(delivered) == sorted(committed)


def test_tables_operations_and_filter(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    ids = insert_inputs(admin, 4)
    admin.execute("UPDATE processing.input SET tile = '31TDJ' WHERE id = %s", (ids[0],))
    updates = FeedSpec(consumer="updates", tables=("processing.input",), operations=("UPDATE",))
    assert drain(admin, updates, FeedCursor())[0] == [ids[0]]
    even = FeedSpec(
        consumer="even",
        tables=("processing.input",),
        filter_sql="e.row_key % 2 = 0",  # a literal % must survive psycopg's placeholders
    )
    assert drain(admin, even, FeedCursor())[0] == [k for k in ids if k % 2 == 0]
    other = FeedSpec(consumer="other", tables=("processing.product",))
    assert drain(admin, other, FeedCursor())[0] == []


def claim_all(conn: psycopg.Connection, spec: FeedSpec, lane: Lane) -> list[int]:
    """Claim until nothing is left (the position moves past it all); the row keys delivered."""
    row_of: dict[int, int] = {}
    keys: list[int] = []
    for tick in range(1, 10_000):
        batch = claim_batch(conn, spec, lane, tick=tick).batch
        if batch is None:
            return keys
        row_of.update(conn.execute("SELECT id, row_key FROM ops.change_event").fetchall())
        keys += [row_of[e] for e in batch.event_ids]
    raise AssertionError("the feed never ran dry")


def test_pruning_respects_the_slowest_consumer(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    fast_spec = FeedSpec(consumer="fast", tables=("processing.input",))
    slow_spec = FeedSpec(consumer="slow", tables=("processing.input",))
    removed_spec = FeedSpec(consumer="removed", tables=("processing.input",))
    (fast,), (slow,), (removed,) = (lanes_of(s, 1) for s in (fast_spec, slow_spec, removed_spec))
    claim_all(admin, removed_spec, removed)  # a sensor since removed, stuck at the start
    early = insert_inputs(admin, 3)
    assert claim_all(admin, fast_spec, fast) == early

    # "slow" never claimed: nothing may go
    result = prune(admin, ["fast", "slow"])
    assert result.events_deleted == 0 and result.missing_consumers == ("slow",)

    assert claim_all(admin, slow_spec, slow) == early
    slow_position = consumer_position(admin, "slow")
    late = insert_inputs(admin, 3)
    assert claim_all(admin, fast_spec, fast) == late
    result = prune(admin, ["fast", "slow"])
    assert slow_position is not None and result.watermark == slow_position.xmin
    assert result.events_deleted == len(early)
    # the slow consumer still gets everything it has not read
    assert claim_all(admin, slow_spec, slow) == late
    # consumers that are not expected (a removed sensor) do not hold the outbox
    assert prune(admin, ["fast", "slow"]).events_deleted == len(late)


def test_pruning_batches(warehouse: WarehouseResource, admin: psycopg.Connection) -> None:
    (lane,) = lanes_of(INPUTS, 1)
    insert_inputs(admin, 2)
    first = claim_batch(admin, INPUTS, lane, tick=1).batch
    insert_inputs(admin, 1)
    second = claim_batch(admin, INPUTS, lane, tick=2).batch
    assert first and second

    def left() -> list[int]:
        return [
            r[0] for r in admin.execute("SELECT batch_id FROM ops.change_feed_batch ORDER BY 1")
        ]

    mark_run_seen(admin, [first.batch_id])  # Dagster has the first batch's run
    assert prune(admin, [INPUTS.consumer], keep_batches=timedelta(hours=1)).batches_deleted == 0
    prune(admin, [INPUTS.consumer], keep_batches=timedelta(0))
    assert left() == [second.batch_id]  # no run seen yet: it may be emitted again
    mark_run_seen(admin, [second.batch_id])
    assert claim_batch(admin, INPUTS, lane, tick=3).batch is None  # the position moves on
    prune(admin, [INPUTS.consumer], keep_batches=timedelta(0))
    assert left() == []


def test_replay_redelivers_with_new_run_keys(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    (lane,) = lanes_of(INPUTS, 1)
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = insert_inputs(admin, 3)
    first = claim_batch(admin, INPUTS, lane, tick=1).batch
    assert first and claim_batch(admin, INPUTS, lane, tick=2).batch is None

    replay_cursor(admin, INPUTS.consumer, since)
    replayed = claim_batch(admin, INPUTS, lane, tick=3).batch
    assert replayed is not None
    row_of = dict(admin.execute("SELECT id, row_key FROM ops.change_event").fetchall())
    assert [row_of[e] for e in replayed.event_ids] == ids
    assert replayed.run_key != first.run_key


def test_processing_migrations_downgrade_and_upgrade_again(empty_database: DatabaseUrls) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from migrations import alembic_config, current_revision, upgrade

    upgrade(empty_database)
    command.downgrade(alembic_config(empty_database), "0004")
    with psycopg.connect(empty_database.libpq) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'processing' "
            "OR tablename IN ('change_event', 'change_feed_batch', 'harvest_cursor')"
        ).fetchone()
    assert left == (0,)
    upgrade(empty_database)
    head = ScriptDirectory.from_config(alembic_config(empty_database)).get_current_head()
    assert current_revision(empty_database) == head


# --- lanes: one position in the database ---------------------------------------------------------


def lanes_of(spec: FeedSpec, count: int) -> list[Lane]:
    return [Lane(spec.consumer, i, count) for i in range(1, count + 1)]


def test_lane_names() -> None:
    assert [lane.name for lane in lanes_of(INPUTS, 3)] == [
        "test_inputs",
        "test_inputs_lane_2",
        "test_inputs_lane_3",
    ]
    assert lane_name("c", 1) == "c"
    with pytest.raises(ChangeFeedError):
        Lane("c", 4, 3)


def test_concurrent_claims_are_disjoint(
    warehouse: WarehouseResource, admin: psycopg.Connection
) -> None:
    """Lanes claim in a tight loop from threads while writers commit and abort out of order."""
    spec = FeedSpec(consumer="claims", tables=("processing.input",), max_events=5)
    committed: list[int] = []
    claimed: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        with warehouse.connect() as conn:
            for _ in range(30):
                ids = insert_inputs(conn, rng.randint(1, 6))
                time.sleep(rng.random() * 0.01)
                if rng.random() < 0.15:
                    conn.rollback()
                else:
                    conn.commit()
                    with lock:
                        committed.extend(ids)

    def claimer(lane: Lane) -> None:
        try:
            with warehouse.connect(autocommit=True) as conn:
                empty_after_writers = 0
                while writing.is_set() or empty_after_writers < 3:
                    claim = claim_batch(conn, spec, lane, tick=1)
                    if claim.batch is not None:
                        with lock:
                            claimed.setdefault(lane.name, []).extend(claim.batch.event_ids)
                    elif not writing.is_set():
                        empty_after_writers += 1
        except BaseException as exc:
            errors.append(exc)
            raise

    writers = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    claimers = [threading.Thread(target=claimer, args=(lane,)) for lane in lanes_of(spec, 4)]
    for t in claimers + writers:
        t.start()
    for t in writers:
        t.join()
    writing.clear()
    for t in claimers:
        t.join()

    assert errors == []
    events = [e for ids in claimed.values() for e in ids]
    assert len(events) == len(set(events))
    row_of = dict(admin.execute("SELECT id, row_key FROM ops.change_event").fetchall())
    assert sorted(row_of[e] for e in events) == sorted(committed)
    assert len(claimed) > 1  # the lanes did share the work
    # every batch is recorded with its lane; the position is past all of them
    rows = admin.execute(
        "SELECT emitted_by, event_ids FROM ops.change_feed_batch WHERE consumer = 'claims'"
    ).fetchall()
    assert sorted(e for _, ids in rows for e in ids) == sorted(events)
    position = consumer_position(admin, "claims")
    assert position is not None and read_events(admin, spec, position).events == ()


def test_spacing_holds_a_lane_back(warehouse: WarehouseResource, admin: psycopg.Connection) -> None:
    first, second = lanes_of(INPUTS, 2)
    insert_inputs(admin, 1)
    assert claim_batch(admin, INPUTS, first, tick=1, spacing=60).batch is not None
    insert_inputs(admin, 1)
    held = claim_batch(admin, INPUTS, second, tick=1, spacing=60)
    assert held.batch is None and held.retry_after is not None and 55 < held.retry_after <= 60
    taken = claim_batch(admin, INPUTS, second, tick=1, spacing=0)
    assert taken.batch is not None and taken.batch.lane == second.name


def test_pruning_keeps_batches_no_run_was_seen_for(admin: psycopg.Connection) -> None:
    (lane,) = lanes_of(INPUTS, 1)
    insert_inputs(admin, 2)
    claimed = claim_batch(admin, INPUTS, lane, tick=1).batch
    assert claimed is not None
    claim_batch(admin, INPUTS, lane, tick=1)  # the position moves past the batch's start
    assert prune(admin, [INPUTS.consumer], keep_batches=timedelta(0)).batches_deleted == 0
    assert [u.batch.batch_id for u in unconfirmed_batches(admin, lane, 0, timedelta(0))] == [
        claimed.batch_id
    ]
    mark_run_seen(admin, [claimed.batch_id])
    assert unconfirmed_batches(admin, lane, 0, timedelta(0)) == []
    assert prune(admin, [INPUTS.consumer], keep_batches=timedelta(0)).batches_deleted == 1


def test_replay_sets_the_lanes_position_back(admin: psycopg.Connection) -> None:
    (lane,) = lanes_of(INPUTS, 1)
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = insert_inputs(admin, 3)
    first = claim_batch(admin, INPUTS, lane, tick=1).batch
    assert first is not None and claim_batch(admin, INPUTS, lane, tick=2).batch is None

    replay_cursor(admin, INPUTS.consumer, since)
    again = claim_batch(admin, INPUTS, lane, tick=3).batch
    assert again is not None and again.run_key != first.run_key
    row_of = dict(admin.execute("SELECT id, row_key FROM ops.change_event").fetchall())
    assert [row_of[e] for e in again.event_ids] == ids
