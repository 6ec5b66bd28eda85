"""The ingestion catalog on real PostgreSQL: migration from ops.ingested_files, the general API,
the legacy inbox API, and two concurrent ingests of one item (issue #20)."""

from __future__ import annotations

import json
import threading
from datetime import date

import psycopg
import pytest

from migrations import alembic_config, upgrade
from platform_assets.ops.catalog import (
    CatalogItem,
    ItemKey,
    done_items,
    ingested_hashes,
    pending,
    record_ingested,
    record_item,
)
from resources.warehouse import DatabaseUrls


def catalog_rows(urls: DatabaseUrls) -> list[tuple]:
    with psycopg.connect(urls.libpq) as conn:
        return conn.execute(
            "SELECT repository, source, identifier, sub_identifier, collection_date, status, "
            "rows_written, run_id FROM ops.catalog ORDER BY id"
        ).fetchall()


# --- migration -------------------------------------------------------------------------------


def test_ingested_files_move_into_the_catalog_and_back(empty_database: DatabaseUrls) -> None:
    from alembic import command

    upgrade(empty_database, "0011")
    details = {"messages": 3, "new_messages": 2, "reports": 4, "quarantined": 1}
    with psycopg.connect(empty_database.libpq) as conn:
        conn.execute(
            "INSERT INTO ops.ingested_files (domain, sha256, source_name, size_bytes, status, "
            "details, run_id) VALUES ('logbook', 'aa', 'one.zip', 10, 'partial', %s, 'run-1'), "
            "('logbook', 'bb', 'one.zip', 12, 'done', '{}', 'run-2')",
            (json.dumps(details),),
        )
    upgrade(empty_database, "0012")
    assert catalog_rows(empty_database) == [
        ("logbook", "inbox", "one.zip", "aa", None, "partial", 2, "run-1"),
        ("logbook", "inbox", "one.zip", "bb", None, "done", 0, "run-2"),
    ]
    with psycopg.connect(empty_database.libpq) as conn:
        assert ingested_hashes(conn, "logbook", ["aa", "bb", "cc"]) == {"aa", "bb"}
        assert conn.execute("SELECT to_regclass('ops.ingested_files')").fetchone() == (None,)
        record_ingested(conn, "logbook", "cc", "two.zip", 5, {"new_messages": 1}, run_id="run-3")

    command.downgrade(alembic_config(empty_database), "0011")
    with psycopg.connect(empty_database.libpq) as conn:
        restored = conn.execute(
            "SELECT domain, sha256, source_name, size_bytes, status, details, run_id "
            "FROM ops.ingested_files ORDER BY sha256"
        ).fetchall()
        assert conn.execute("SELECT to_regclass('ops.catalog')").fetchone() == (None,)
        assert conn.execute("SELECT to_regclass('ops.run_metrics')").fetchone() == (None,)
    assert restored == [
        ("logbook", "aa", "one.zip", 10, "partial", details, "run-1"),
        ("logbook", "bb", "one.zip", 12, "done", {}, "run-2"),
        ("logbook", "cc", "two.zip", 5, "done", {"new_messages": 1}, "run-3"),
    ]
    upgrade(empty_database)  # and up again to head
    assert len(catalog_rows(empty_database)) == 3


# --- general API -----------------------------------------------------------------------------


def osm(
    name: str, day: date | None = None, content: str | None = None, **kw: object
) -> CatalogItem:
    return CatalogItem("pois", "osm", name, collection_date=day, content_hash=content, **kw)  # type: ignore[arg-type]


def test_items_are_upserted_on_their_full_key(database: DatabaseUrls) -> None:
    with psycopg.connect(database.libpq) as conn:
        record_item(conn, osm("brittany.pbf", date(2026, 12, 1), "h1").stored(10, run_id="r1"))
        record_item(conn, osm("brittany.pbf", date(2026, 12, 2), "h2").stored(11, run_id="r2"))
        record_item(conn, osm("brittany.pbf").stored(3, run_id="r3"))  # no date
        record_item(conn, osm("brittany.pbf").stored(4, run_id="r4"))  # same key, no date: upsert
        record_item(
            conn, CatalogItem("pois", "osm", "brittany.pbf", "part-2").stored(1, run_id="r5")
        )
        record_item(conn, CatalogItem("pois", "insee", "brittany.pbf").stored(1, run_id="r6"))
    rows = catalog_rows(database)
    assert len(rows) == 5
    assert ("pois", "osm", "brittany.pbf", "", None, "done", 4, "r4") in rows


def test_done_items_and_pending_compare_with_the_catalog(database: DatabaseUrls) -> None:
    a = osm("a.pbf", date(2026, 12, 1), "ha")
    b = osm("b.pbf", date(2026, 12, 1), "hb")
    c = osm("c.pbf", date(2026, 12, 2), "hc")
    with psycopg.connect(database.libpq) as conn:
        record_item(conn, a.stored(5, run_id="r1"))
        record_item(conn, b.stored(5, run_id="r1", status="failed"))
        record_item(conn, c.stored(0, run_id="r1", status="partial"))
        assert done_items(conn, "pois", "osm") == {a.key: "ha", c.key: "hc"}
        assert done_items(conn, "pois", "osm", [a.key, ItemKey("zzz")]) == {a.key: "ha"}
        assert done_items(conn, "pois", "osm", since=date(2026, 12, 2)) == {c.key: "hc"}
        assert done_items(conn, "pois", "osm", []) == {}
        changed = osm("c.pbf", date(2026, 12, 2), "hc-new")
        new = osm("d.pbf", date(2026, 12, 2))
        candidates = [a, b, changed, new]
        assert pending(conn, candidates) == [b, changed, new]
        assert pending(conn, candidates, force=True) == candidates


def test_legacy_api_records_inbox_files(database: DatabaseUrls) -> None:
    with psycopg.connect(database.libpq) as conn:
        record_ingested(conn, "logbook", "h1", "f.zip", 9, {"new_messages": 3}, run_id="r1")
        record_ingested(conn, "logbook", "h1", "f.zip", 9, {"new_messages": 0}, run_id="r2")
        assert ingested_hashes(conn, "logbook", ["h1", "h2"]) == {"h1"}
        assert ingested_hashes(conn, "positions", ["h1"]) == set()
        with pytest.raises(ValueError, match="status 'weird' of f.zip"):
            record_ingested(conn, "logbook", "h1", "f.zip", 9, {}, status="weird")
    assert catalog_rows(database) == [("logbook", "inbox", "f.zip", "h1", None, "done", 3, "r1")]


# --- concurrency (issue #20) ----------------------------------------------------------------


def _concurrent(database: DatabaseUrls, first_written: int, second_written: int) -> list[tuple]:
    """Run 1 records first and commits only once run 2's upsert waits on its row."""
    item = osm("same.pbf", date(2026, 12, 1), "h")
    first = psycopg.connect(database.libpq)
    second = psycopg.connect(database.libpq)
    try:
        record_item(first, item.stored(first_written, run_id="run-1"))
        second_pid = second.info.backend_pid
        errors: list[BaseException] = []

        def run_second() -> None:
            try:
                record_item(second, item.stored(second_written, run_id="run-2"))
                second.commit()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=run_second)
        thread.start()
        _wait_until_blocked(database, second_pid)
        first.commit()
        thread.join(timeout=30)
        assert not thread.is_alive() and not errors
    finally:
        first.close()
        second.close()
    return catalog_rows(database)


def _wait_until_blocked(database: DatabaseUrls, pid: int) -> None:
    import time

    deadline = time.monotonic() + 30
    with psycopg.connect(database.libpq, autocommit=True) as admin:
        while time.monotonic() < deadline:
            waiting = admin.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the second run never waited on the first one's catalog row")


def test_concurrent_ingest_keeps_the_run_that_stored_something(database: DatabaseUrls) -> None:
    rows = _concurrent(database, first_written=7, second_written=0)
    assert [(r[6], r[7]) for r in rows] == [(7, "run-1")]
    with psycopg.connect(database.libpq) as conn:
        seen = conn.execute("SELECT last_seen_run_id FROM ops.catalog").fetchone()
    assert seen == ("run-2",)


def test_concurrent_ingest_the_storing_run_wins_when_it_commits_second(
    database: DatabaseUrls,
) -> None:
    rows = _concurrent(database, first_written=0, second_written=7)
    assert [(r[6], r[7]) for r in rows] == [(7, "run-2")]


def test_concurrent_legacy_ingests_of_one_file(database: DatabaseUrls) -> None:
    """The logbook's call: the run whose messages were new keeps the entry."""
    first = psycopg.connect(database.libpq)
    second = psycopg.connect(database.libpq)
    try:
        record_ingested(first, "logbook", "h", "f.zip", 1, {"new_messages": 5}, run_id="run-1")
        thread = threading.Thread(
            target=lambda: (
                record_ingested(
                    second, "logbook", "h", "f.zip", 1, {"new_messages": 0}, run_id="run-2"
                ),
                second.commit(),
            )
        )
        thread.start()
        _wait_until_blocked(database, second.info.backend_pid)
        first.commit()
        thread.join(timeout=30)
    finally:
        first.close()
        second.close()
    assert [(r[6], r[7]) for r in catalog_rows(database)] == [(5, "run-1")]
