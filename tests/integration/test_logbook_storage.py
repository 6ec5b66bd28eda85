"""Logbook storage on real PostgreSQL: idempotence, concurrency, quarantine, replay, resolution."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import pytest
from dagster import RunConfig, build_sensor_context, materialize

import platform_assets.logbook.load as load_module
from platform_assets.logbook.assets import (
    LogbookIngestConfig,
    logbook_messages,
    logbook_reports_resolved,
)
from platform_assets.logbook.inbox import read_messages
from platform_assets.logbook.jobs import logbook_replay_job
from platform_assets.logbook.load import RawMessage, ingest
from platform_assets.samples.logbook import MALFORMED, NS, sample_messages, write_sample_archive
from resources.inboxes import LogbookInboxResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource
from sensors.logbook import logbook_inbox_sensor


def _raws(count: int = 28, seed: int = 3) -> list[RawMessage]:
    return [
        RawMessage("batch.zip", f"{on}.xml", xml.encode())
        for on, xml in sample_messages(count, seed)
    ]


def _count(warehouse: WarehouseResource, table: str) -> int:
    with warehouse.connect() as conn:
        return conn.execute(f"SELECT count(*) FROM logbook.{table}").fetchone()[0]


def _ingest(warehouse: WarehouseResource, raws: list[RawMessage]):
    with warehouse.connect() as conn:
        result = ingest(conn, raws)
        conn.commit()
    return result


def test_a_batch_is_stored_once_however_often_it_is_loaded(warehouse: WarehouseResource) -> None:
    raws = _raws()
    first = _ingest(warehouse, raws)
    assert (first.messages, first.new_messages, first.quarantined) == (28, 28, 0)
    assert first.reports == 28  # one report per message in these trips
    again = _ingest(warehouse, raws + raws[:5])  # the same messages, some twice in one batch
    assert (again.new_messages, again.already_known, again.reports) == (0, 33, 0)
    assert _count(warehouse, "logbook_raw_messages") == 28
    assert _count(warehouse, "logbook_reports") == 28


def test_a_message_repeated_in_a_fresh_batch_is_stored_once(warehouse: WarehouseResource) -> None:
    raws = _raws(4)
    result = _ingest(warehouse, raws + raws)
    assert (result.messages, result.new_messages, result.already_known) == (8, 4, 4)
    assert _count(warehouse, "logbook_reports") == 4


def test_two_concurrent_loads_of_the_same_messages_store_them_once(
    warehouse: WarehouseResource,
) -> None:
    raws = _raws(200)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def load() -> None:
        try:
            with warehouse.connect() as conn:
                barrier.wait()
                results.append(ingest(conn, raws))
                conn.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(r.new_messages for r in results) == [0, 200]
    assert _count(warehouse, "logbook_raw_messages") == 200
    with warehouse.connect() as conn:
        duplicated = conn.execute(
            "SELECT count(*) FROM (SELECT operation_number FROM logbook.logbook_reports "
            "GROUP BY operation_number HAVING count(*) > 1) d"
        ).fetchone()[0]
    assert duplicated == 0


def test_stored_rows_carry_the_message_fields(warehouse: WarehouseResource) -> None:
    _ingest(warehouse, _raws(3))
    with warehouse.connect() as conn:
        row = conn.execute(
            "SELECT r.operation_type, r.log_type, r.cfr, r.value -> 'departurePort', "
            "r.transmission_format, m.xml_message LIKE '<?xml%%', m.source_file "
            "FROM logbook.logbook_reports r JOIN logbook.logbook_raw_messages m USING (operation_number) "
            "WHERE r.operation_type = 'DAT' ORDER BY r.operation_number LIMIT 1"
        ).fetchone()
    assert row[0:2] == ("DAT", "DEP")
    assert row[2].startswith("FRA")
    assert row[3] is not None
    assert row[4:] == ("ERS", True, "batch.zip")


def test_unparsable_messages_are_quarantined_and_the_rest_is_stored(
    warehouse: WarehouseResource,
) -> None:
    raws = [
        *_raws(5),
        RawMessage("batch.zip", "bad.xml", MALFORMED),
        RawMessage("batch.zip", "empty.xml", b""),
    ]
    result = _ingest(warehouse, raws)
    assert (result.new_messages, result.quarantined) == (5, 2)
    assert any("missing operation number" in e and "bad.xml" in e for e in result.errors)
    _ingest(warehouse, raws)  # seen again: one quarantine row each, attempts counted
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT member, attempts, source_file, raw_bytes FROM logbook.logbook_quarantine ORDER BY member"
        ).fetchall()
    assert [(m, a, f) for m, a, f, _ in rows] == [
        ("bad.xml", 2, "batch.zip"),
        ("empty.xml", 2, "batch.zip"),
    ]
    assert bytes(rows[0][3]) == MALFORMED


def test_replay_moves_messages_that_parse_after_a_fix(
    warehouse: WarehouseResource, dagster_instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    raws = _raws(6)
    real_parse = load_module.parse_message

    def buggy_parse(data: bytes, *, source: str):
        if b"<ers:FAR" in data:
            raise load_module.LogbookParsingError(f"{source}: FAR not supported (parser bug)")
        return real_parse(data, source=source)

    monkeypatch.setattr(load_module, "parse_message", buggy_parse)
    first = _ingest(warehouse, raws)
    assert first.quarantined > 0
    monkeypatch.setattr(load_module, "parse_message", real_parse)  # the fix is deployed
    quarantined = _count(warehouse, "logbook_quarantine")

    # a dry replay does the same work and keeps nothing
    dry = logbook_replay_job.execute_in_process(
        instance=dagster_instance,
        resources={"warehouse": warehouse, "dry_run": DryRunResource(enabled=True)},
    )
    assert dry.success
    assert _count(warehouse, "logbook_quarantine") == quarantined
    assert _count(warehouse, "logbook_raw_messages") == 6 - quarantined

    result = logbook_replay_job.execute_in_process(
        instance=dagster_instance,
        resources={"warehouse": warehouse, "dry_run": DryRunResource()},
    )
    assert result.success
    assert _count(warehouse, "logbook_quarantine") == 0
    assert _count(warehouse, "logbook_raw_messages") == 6


# --- resolution ---------------------------------------------------------------------------------


def _ops(on: str, body: str, when: str = "2026-03-02T10:00") -> bytes:
    day, time = when.split("T")
    return (
        f'<ers:OPS xmlns:ers="{NS}" AD="FRA" FR="OOF" ON="{on}" OD="{day}" OT="{time}" EVL="t">{body}</ers:OPS>'
    ).encode()


def _far(rn: str, species: str, weight: int, when: str = "2026-03-02T10:00") -> str:
    day, time = when.split("T")
    return (
        f'<ers:ERS RN="{rn}" RD="{day}" RT="{time}"><ers:LOG IR="FRA000000001" RC="FAAA1" XR="LR 1" NA="V" FS="FRA">'
        f'<ers:FAR DA="{day}" TI="{time}"><ers:SPE SN="{species}" WT="{weight}"><ers:RAS FA="27" SA="8" ID="a" EZ="FRA"/>'
        f'</ers:SPE></ers:FAR><ers:ELOG Type="nat" TN="T1"/></ers:LOG></ers:ERS>'
    )


def test_resolved_view_applies_deletions_latest_corrections_and_acknowledgements(
    warehouse: WarehouseResource,
) -> None:
    messages = {
        "A1": _ops("A1", f'<ers:DAT TM="CU">{_far("A1", "SOL", 10)}</ers:DAT>'),
        "B1": _ops("B1", f'<ers:DAT TM="CU">{_far("B1", "HKE", 20)}</ers:DAT>'),
        "C1": _ops("C1", f'<ers:DAT TM="CU">{_far("C1", "COD", 30)}</ers:DAT>'),
        # two corrections of A1: the later one wins, whatever the arrival order
        "A3": _ops(
            "A3",
            f'<ers:COR RN="A1" RE="x">{_far("A3", "SOL", 13, "2026-03-02T12:00")}</ers:COR>',
            "2026-03-02T12:00",
        ),
        "A2": _ops(
            "A2",
            f'<ers:COR RN="A1" RE="x">{_far("A2", "SOL", 12, "2026-03-02T11:00")}</ers:COR>',
            "2026-03-02T11:00",
        ),
        "DB": _ops("DB", '<ers:DEL RN="B1" RE="erreur"/>'),
        "R1": _ops("R1", '<ers:RET RS="000" ON="A3" RE=""/>'),
        "R2": _ops("R2", '<ers:RET RS="002" ON="C1" RE=""/>'),
    }
    _ingest(warehouse, [RawMessage("f.zip", k, v) for k, v in messages.items()])
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT report_id, operation_type, value -> 'hauls' -> 0 -> 'catches' -> 0 ->> 'weight', "
            "is_acknowledged, acknowledgement_return_status "
            "FROM logbook.logbook_reports_resolved ORDER BY report_id"
        ).fetchall()
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("A3", "COR", True, "000"),
        ("C1", "DAT", False, "002"),
    ]
    assert float(rows[0][2]) == 13.0


# --- through Dagster ------------------------------------------------------------------------------


def test_inbox_files_are_ingested_once_and_the_sensor_requests_one_run_per_new_file(
    warehouse: WarehouseResource, dagster_instance, tmp_path: Path
) -> None:
    inbox = LogbookInboxResource(directory=str(tmp_path))
    write_sample_archive(tmp_path / "a.zip", count=20)
    (tmp_path / "single.xml").write_bytes(sample_messages(25, seed=9)[-1][1].encode())
    resources = {"warehouse": warehouse, "logbook_inbox": inbox, "dry_run": DryRunResource()}

    with build_sensor_context(instance=dagster_instance, resources=resources) as context:
        requests = logbook_inbox_sensor(context)
    assert sorted(r.tags["fishnet/file"] for r in requests) == ["a.zip", "single.xml"]
    assert len({r.run_key for r in requests}) == 2

    result = materialize(
        [logbook_messages, logbook_reports_resolved],
        resources=resources,
        instance=dagster_instance,
        run_config=RunConfig(ops={"logbook_messages": LogbookIngestConfig()}),
    )
    assert result.success
    raw_meta = result.asset_materializations_for_node("logbook_messages")[0].metadata
    assert raw_meta["files"].value == 2
    assert raw_meta["quarantined"].value == 1
    assert raw_meta["messages_per_second"].value > 0
    assert raw_meta["ers_walker"].value == "compiled"  # what operators see if the build failed
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("no_quarantined_messages", False)]

    with build_sensor_context(instance=dagster_instance, resources=resources) as context:
        assert logbook_inbox_sensor(context).skip_message.endswith("all ingested")
    again = materialize([logbook_messages], resources=resources, instance=dagster_instance)
    assert again.asset_materializations_for_node("logbook_messages")[0].metadata["files"].value == 0
    assert _count(warehouse, "logbook_raw_messages") == 21


def test_an_unreadable_archive_is_quarantined_whole(
    warehouse: WarehouseResource, dagster_instance, tmp_path: Path
) -> None:
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    write_sample_archive(tmp_path / "good.zip", count=5)
    resources = {
        "warehouse": warehouse,
        "logbook_inbox": LogbookInboxResource(directory=str(tmp_path)),
        "dry_run": DryRunResource(),
    }
    assert materialize([logbook_messages], resources=resources, instance=dagster_instance).success
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT source_file, error FROM logbook.logbook_quarantine ORDER BY source_file"
        ).fetchall()
    assert rows[0][0] == "broken.zip" and "not a readable zip" in rows[0][1]
    assert _count(warehouse, "logbook_raw_messages") == 5


def test_zip_members_are_read_in_name_order(tmp_path: Path) -> None:
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("b.xml", b"<b/>")
        archive.writestr("a.xml", b"<a/>")
        archive.writestr("notes.txt", b"ignored")
    assert [m.member for m in read_messages(path)] == ["a.xml", "b.xml"]
