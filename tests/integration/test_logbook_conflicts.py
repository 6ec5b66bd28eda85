"""A reused operation number: the same message again is skipped, a different one is kept apart.

Messages are idempotent by operation number, which is right for a re-delivery; a different
message under a stored number (the FLUX 711002 correction of the reference corpus reuses
711001's message id) must not vanish: it goes to the quarantine as a conflict naming both.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from platform_assets.logbook.load import LoadResult, RawMessage, ingest, replay_quarantine
from platform_assets.samples.logbook import sample_messages
from resources.warehouse import DatabaseUrls, WarehouseResource

ON, XML = sample_messages(3, seed=4)[0]
ORIGINAL = XML.encode()
CHANGED = ORIGINAL.replace(b'EVL="', b'EVL="changed ', 1)
FLUX = "logbook/messages/flux"
FLUX_711001 = "FLUX-FA-EU-711001_-_Prior_notification_of_arrival_to_port_(Reason=Landing).xml"
FLUX_711002 = (
    "FLUX-FA-EU-711002_-_Prior_notification_of_arrival_to_port_(Reason=Landing)_-_correction.xml"
)


def _ingest(warehouse: WarehouseResource, raws: list[RawMessage]) -> LoadResult:
    with warehouse.connect() as conn:
        result = ingest(conn, raws)
        conn.commit()
    return result


def _conflicts(warehouse: WarehouseResource) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.execute(
            "SELECT source_file, member, operation_number, conflicts_with, error, attempts, "
            "raw_bytes FROM logbook.logbook_quarantine WHERE kind = 'conflict' ORDER BY id"
        ).fetchall()


def _stored(warehouse: WarehouseResource, number: str) -> tuple:
    with warehouse.connect() as conn:
        return conn.execute(
            "SELECT source_file, xml_message FROM logbook.logbook_raw_messages "
            "WHERE operation_number = %s",
            (number,),
        ).fetchone()


def test_the_same_message_again_is_skipped_in_any_encoding_or_padding(
    warehouse: WarehouseResource,
) -> None:
    _ingest(warehouse, [RawMessage("a.zip", "m.xml", ORIGINAL)])
    utf16 = ORIGINAL.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    again = _ingest(
        warehouse,
        [
            RawMessage("b.zip", "m.xml", ORIGINAL),
            RawMessage("c.zip", "m.xml", b"\n  " + ORIGINAL + b"\r\n"),
        ],
    )
    assert (again.new_messages, again.already_known, again.conflicts, again.quarantined) == (
        0,
        2,
        0,
        0,
    )
    # A UTF-16 copy is the same message: only its encoding and declaration differ.
    assert _ingest(warehouse, [RawMessage("d.zip", "m.xml", utf16.encode("utf-16"))]).conflicts == 0
    assert _stored(warehouse, ON)[0] == "a.zip"


def test_a_different_message_under_a_stored_number_is_quarantined_naming_both(
    warehouse: WarehouseResource,
) -> None:
    _ingest(warehouse, [RawMessage("first.zip", "m.xml", ORIGINAL)])
    result = _ingest(warehouse, [RawMessage("second.zip", "n.xml", CHANGED)])

    assert (result.new_messages, result.already_known, result.conflicts) == (0, 0, 1)
    assert result.quarantined == 1
    ((source, member, number, conflicts_with, error, attempts, data),) = _conflicts(warehouse)
    assert (source, member, number, conflicts_with, bytes(data)) == (
        "second.zip",
        "n.xml",
        ON,
        "first.zip",
        CHANGED,
    )
    assert f"second.zip:n.xml: operation number {ON} is already used by the message from " in error
    assert "first.zip" in error and result.errors == [error]
    assert _stored(warehouse, ON) == ("first.zip", ORIGINAL.decode())  # the stored one stands

    _ingest(warehouse, [RawMessage("second.zip", "n.xml", CHANGED)])  # delivered again
    assert [row[5] for row in _conflicts(warehouse)] == [2]


def test_a_conflict_within_one_batch_keeps_the_first_and_quarantines_the_other(
    warehouse: WarehouseResource,
) -> None:
    result = _ingest(
        warehouse,
        [
            RawMessage("batch.zip", "1.xml", ORIGINAL),
            RawMessage("batch.zip", "2.xml", CHANGED),
            RawMessage("batch.zip", "3.xml", ORIGINAL),
        ],
    )
    assert (result.new_messages, result.already_known, result.conflicts) == (1, 1, 1)
    ((source, member, number, conflicts_with, *_),) = _conflicts(warehouse)
    assert (member, number, conflicts_with) == ("2.xml", ON, "batch.zip:1.xml")


def test_replay_keeps_a_conflict_until_its_number_is_free_then_stores_it(
    warehouse: WarehouseResource,
) -> None:
    _ingest(warehouse, [RawMessage("first.zip", "m.xml", ORIGINAL)])
    _ingest(warehouse, [RawMessage("second.zip", "m.xml", CHANGED)])
    with warehouse.connect() as conn:
        replay = replay_quarantine(conn)
        conn.commit()
    assert (replay.replayed, replay.still_failing) == (0, 1)
    assert [row[5] for row in _conflicts(warehouse)] == [2]

    with warehouse.connect() as conn:  # an operator decides the stored one was wrong
        conn.execute("DELETE FROM logbook.logbook_reports WHERE operation_number = %s", (ON,))
        conn.execute("DELETE FROM logbook.logbook_raw_messages WHERE operation_number = %s", (ON,))
        replay = replay_quarantine(conn)
        conn.commit()
    assert (replay.replayed, replay.still_failing, replay.load.new_messages) == (1, 0, 1)
    assert _stored(warehouse, ON)[0] == "second.zip"
    assert _conflicts(warehouse) == []


def test_the_corpus_correction_that_reuses_an_operation_number_is_a_conflict(
    warehouse: WarehouseResource, shared_data_dir: Path
) -> None:
    landing = (shared_data_dir / FLUX / FLUX_711001).read_bytes()
    correction = (shared_data_dir / FLUX / FLUX_711002).read_bytes()
    first = _ingest(warehouse, [RawMessage("corpus", FLUX_711001, landing)])
    second = _ingest(
        warehouse,
        [RawMessage("corpus", FLUX_711002, correction), RawMessage("again", FLUX_711001, landing)],
    )
    assert (first.new_messages, first.reports) == (1, 1)
    assert (second.new_messages, second.already_known, second.conflicts) == (0, 1, 1)
    ((source, member, number, conflicts_with, error, _, data),) = _conflicts(warehouse)
    assert (member, number, conflicts_with) == (
        FLUX_711002,
        "d5c3b039-aaee-4cca-bcae-637fa8effe14",
        "corpus",
    )
    assert bytes(data) == correction and FLUX_711002 in error


def test_the_migration_backfills_content_hashes_as_the_loader_computes_them(
    empty_database: DatabaseUrls,
) -> None:
    from alembic import command

    from migrations import alembic_config, upgrade

    upgrade(empty_database, "0008")
    padded = "\n  " + XML.replace('encoding="UTF-8"', 'encoding="UTF-16"') + " \u00bf\r\n"
    with psycopg.connect(empty_database.libpq) as conn:
        conn.execute(
            "INSERT INTO logbook.logbook_raw_messages "
            "(operation_number, transmission_format, xml_message) VALUES (%s, 'ERS', %s)",
            (ON, padded),
        )
        conn.execute(
            "INSERT INTO logbook.logbook_quarantine (raw_sha256, source_file, raw_message, "
            "raw_bytes, error) VALUES ('k', 'f.xml', 'x', 'x', 'e')"
        )
    upgrade(empty_database, "0009")
    with psycopg.connect(empty_database.libpq) as conn:
        (digest,) = conn.execute(
            "SELECT content_sha256 FROM logbook.logbook_raw_messages"
        ).fetchone()
        kind = conn.execute("SELECT kind FROM logbook.logbook_quarantine").fetchone()
        conn.execute(
            "INSERT INTO logbook.logbook_quarantine (raw_sha256, source_file, raw_bytes, error, "
            "kind) VALUES ('n', 'g.zip', '\\x00'::bytea, 'e', 'unreadable')"
        )
    assert digest == RawMessage("f", "m", padded.encode("utf-16")).content_sha256
    assert digest == RawMessage("f", "m", ORIGINAL).content_sha256
    assert kind == ("parse",)
    command.downgrade(alembic_config(empty_database), "0008")
    with psycopg.connect(empty_database.libpq) as conn:
        columns = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'logbook' AND table_name = 'logbook_quarantine'"
            )
        }
        assert conn.execute("SELECT count(*) FROM logbook.logbook_quarantine").fetchone() == (2,)
    assert "kind" not in columns and "origin" not in columns
    upgrade(empty_database, "0009")


@pytest.mark.parametrize("copies", [1, 3])
def test_identical_copies_of_a_conflicting_message_are_one_quarantine_item(
    warehouse: WarehouseResource, copies: int
) -> None:
    _ingest(warehouse, [RawMessage("first.zip", "m.xml", ORIGINAL)])
    result = _ingest(warehouse, [RawMessage("second.zip", "m.xml", CHANGED)] * copies)
    assert result.conflicts == copies and result.new_messages == 0
    assert [row[5] for row in _conflicts(warehouse)] == [copies]
