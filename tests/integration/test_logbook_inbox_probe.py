"""The inbox probe: a hostile but realistic inbox, loaded file by file as the ingest asset does.

Good zip, zip with a corrupt member, file holding a NUL byte, UTF-16 message, zip bomb (about
1.3 MB on disk, 1.2 GiB of zeros inside), message with a DOCTYPE naming a named pipe: one run loads
every good message, quarantines every bad item with its bytes, name and error, reads every file
after the bad ones, and keeps memory bounded by the per-member cap. Replay then tries each bad item
again without failing on any of them.
"""

from __future__ import annotations

import os
import threading
import tracemalloc
from pathlib import Path

import pytest
from dagster import RunConfig, materialize

from platform_assets.logbook import inbox as inbox_module
from platform_assets.logbook.assets import LogbookIngestConfig, logbook_messages
from platform_assets.logbook.inbox import list_inbox, read_messages
from platform_assets.logbook.load import LoadResult, ingest, replay_quarantine
from platform_assets.ops.catalog import ingested_hashes
from platform_assets.samples.logbook import sample_messages
from resources.inboxes import LogbookInboxResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource
from tests.unit.test_logbook_inbox_reading import corrupted, deflated, zeros_member, zip_archive

MESSAGES = [(on, xml.encode()) for on, xml in sample_messages(12, seed=21)]


def _build_inbox(directory: Path) -> dict[str, object]:
    """Write the probe inbox; return what each bad item is."""
    good = MESSAGES[0:4]
    zip_archive(directory / "01-good.zip", [deflated(f"{on}.xml", xml) for on, xml in good])

    broken = corrupted(deflated("broken.xml", MESSAGES[4][1] * 30))
    zip_archive(
        directory / "02-corrupt-member.zip",
        [
            deflated(f"{MESSAGES[5][0]}.xml", MESSAGES[5][1]),
            broken,
            deflated(f"{MESSAGES[6][0]}.xml", MESSAGES[6][1]),
        ],
    )
    nul = MESSAGES[7][1].replace(b"?>", b"?>\x00", 1)
    (directory / "03-nul.xml").write_bytes(nul)

    utf16 = MESSAGES[8][1].decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    (directory / "04-utf16.xml").write_bytes(utf16.encode("utf-16"))

    bomb = zeros_member("bomb.xml", 1220)  # 1.19 GiB of zeros
    zip_archive(
        directory / "05-bomb.zip",
        [bomb, deflated(f"{MESSAGES[9][0]}.xml", MESSAGES[9][1])],
    )
    pipe = directory / ".dtd-pipe"  # hidden: not an inbox file
    os.mkfifo(pipe)
    doctype = MESSAGES[10][1].replace(
        b"?>", f'?><!DOCTYPE ers:OPS SYSTEM "file://{pipe}">'.encode(), 1
    )
    (directory / "06-doctype.xml").write_bytes(doctype)
    (directory / "07-after.xml").write_bytes(MESSAGES[11][1])
    return {"broken": broken, "nul": nul, "bomb": bomb, "pipe": pipe}


def _pipe_watcher(pipe: Path) -> tuple[threading.Event, threading.Thread]:
    opened = threading.Event()

    def write() -> None:
        with open(pipe, "wb") as handle:  # returns only once something opens the pipe
            opened.set()
            handle.write(b"<!ENTITY x 'y'>")

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return opened, thread


def _release(pipe: Path, thread: threading.Thread) -> None:
    fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    try:
        thread.join(timeout=10)
    finally:
        os.close(fd)


def _quarantine(warehouse: WarehouseResource) -> dict[str, tuple]:
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT member, source_file, kind, raw_bytes, raw_message, error, attempts "
            "FROM logbook.logbook_quarantine"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_the_probe_inbox_loads_every_good_message_and_quarantines_every_bad_one(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    bad = _build_inbox(tmp_path)
    assert (tmp_path / "05-bomb.zip").stat().st_size < 1_500_000
    opened, writer = _pipe_watcher(bad["pipe"])  # type: ignore[arg-type]
    totals = LoadResult()
    tracemalloc.start()
    try:
        for inbox_file in list_inbox(tmp_path):  # one transaction per file, as the asset does
            with warehouse.connect() as conn:
                totals.add(ingest(conn, read_messages(inbox_file.path)))
                conn.commit()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not opened.is_set(), "the DOCTYPE made the parser open the pipe"
    _release(bad["pipe"], writer)  # type: ignore[arg-type]
    assert peak < inbox_module.MAX_MEMBER_BYTES, f"the run held {peak} bytes at its peak"

    good = {on for on, _ in MESSAGES} - {MESSAGES[4][0], MESSAGES[7][0], MESSAGES[10][0]}
    with warehouse.connect() as conn:
        stored = {
            row[0]: row[1]
            for row in conn.execute(
                "SELECT operation_number, xml_message FROM logbook.logbook_raw_messages"
            )
        }
    assert (
        set(stored) == good
    )  # the zip's good members, UTF-16, the bomb's neighbour, the last file
    assert stored[MESSAGES[8][0]].startswith('<?xml version="1.0" encoding="UTF-16"?>')
    assert (totals.new_messages, totals.quarantined) == (len(good), 4)

    items = _quarantine(warehouse)
    assert set(items) == {"broken.xml", "03-nul.xml", "bomb.xml", "06-doctype.xml"}
    source, kind, raw_bytes, raw_message, error, _ = items["broken.xml"]
    assert (source, kind, bytes(raw_bytes), raw_message) == (
        "02-corrupt-member.zip",
        "unreadable",
        bad["broken"].stored,
        None,  # type: ignore[attr-defined]
    )
    assert error.startswith("02-corrupt-member.zip:broken.xml: cannot be inflated")
    source, kind, raw_bytes, raw_message, error, _ = items["03-nul.xml"]
    assert (kind, bytes(raw_bytes)) == ("parse", bad["nul"])
    assert "\x00" not in raw_message and "?>\ufffd<" in raw_message
    source, kind, raw_bytes, _, error, _ = items["bomb.xml"]
    assert (source, kind, bytes(raw_bytes)) == ("05-bomb.zip", "unreadable", bad["bomb"].stored)  # type: ignore[attr-defined]
    assert "cap" in error
    assert "document type declaration" in items["06-doctype.xml"][4]

    # Replay tries every item again: none can load yet, none breaks it, attempts are counted.
    with warehouse.connect() as conn:
        replay = replay_quarantine(conn)
        conn.commit()
    assert (replay.replayed, replay.still_failing) == (0, 4)
    after = _quarantine(warehouse)
    assert {member: row[5] for member, row in after.items()} == dict.fromkeys(items, 2)
    assert after["broken.xml"][4].startswith("02-corrupt-member.zip:broken.xml: cannot be")


def test_replay_loads_a_member_once_the_cap_that_refused_it_is_raised(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on, xml = MESSAGES[0]
    path = zip_archive(tmp_path / "a.zip", [deflated(f"{on}.xml", xml), deflated("x.xml", b"<a/>")])
    monkeypatch.setattr(inbox_module, "MAX_MEMBER_BYTES", len(xml) - 1)
    with warehouse.connect() as conn:
        first = ingest(conn, read_messages(path))
        conn.commit()
    assert (first.new_messages, first.quarantined) == (0, 2)  # x.xml: not a logbook message

    monkeypatch.setattr(inbox_module, "MAX_MEMBER_BYTES", 64 << 20)
    with warehouse.connect() as conn:
        replay = replay_quarantine(conn)
        conn.commit()
        stored = conn.execute(
            "SELECT operation_number FROM logbook.logbook_raw_messages"
        ).fetchall()
    assert replay.replayed == 1 and replay.load.new_messages == 1
    assert stored == [(on,)]
    assert set(_quarantine(warehouse)) == {"x.xml"}


def test_the_ingest_asset_runs_the_probe_inbox_to_the_end(
    warehouse: WarehouseResource, dagster_instance, tmp_path: Path
) -> None:
    bad = _build_inbox(tmp_path)
    opened, writer = _pipe_watcher(bad["pipe"])  # type: ignore[arg-type]
    result = materialize(
        [logbook_messages],
        resources={
            "warehouse": warehouse,
            "logbook_inbox": LogbookInboxResource(directory=str(tmp_path)),
            "dry_run": DryRunResource(),
        },
        instance=dagster_instance,
        run_config=RunConfig(ops={"logbook_messages": LogbookIngestConfig()}),
    )
    assert not opened.is_set()
    _release(bad["pipe"], writer)  # type: ignore[arg-type]
    assert result.success
    metadata = result.asset_materializations_for_node("logbook_messages")[0].metadata
    assert (metadata["files"].value, metadata["quarantined"].value) == (7, 4)
    files = list_inbox(tmp_path)
    with warehouse.connect() as conn:  # every file is in the catalog: a re-run skips them all
        assert ingested_hashes(conn, "logbook", [f.sha256 for f in files]) == {
            f.sha256 for f in files
        }
