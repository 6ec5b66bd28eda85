"""Each alert family against a real, migrated PostgreSQL: scenarios written to the tables the
families read, then the pending-alerts table checked (idempotence, closing, silencing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
import pytest
import shapely
from psycopg.types.json import Jsonb

from platform_assets.alerts import store
from platform_assets.alerts.beacons import BeaconSettings
from platform_assets.alerts.missing_declarations import MissingDepSettings, MissingFarSettings
from platform_assets.alerts.run import (
    run_beacons,
    run_missing_dep,
    run_missing_far,
    run_position_alerts,
)
from platform_assets.alerts.zones import Zone
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource

NOW = datetime(2024, 5, 8, 12, tzinfo=UTC)
CLOSED = "Closed zone 47.5N 4.5W"


def insert_positions(conn: psycopg.Connection, frame: pd.DataFrame) -> None:
    """Enriched positions into the partitioned table (partitions created as needed), committed:
    the families read positions on a second (ADBC) connection."""
    days = sorted({pd.Timestamp(t).date() for t in frame["datetime_utc"]})
    for day in days:
        conn.execute("SELECT positions.ensure_partition(%s)", (day,))
    tracks: dict[tuple, int] = {}
    with conn.cursor() as cur:
        for row in frame.to_dict("records"):
            ids = (row["internal_reference_number"], row.get("ircs"))
            track = tracks.setdefault(ids, len(tracks) + 1)
            cur.execute(
                """
                INSERT INTO positions.positions (id, track_id, internal_reference_number,
                    external_reference_number, ircs, vessel_name, flag_state, latitude, longitude,
                    datetime_utc, is_at_port, is_fishing)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                """,
                (
                    row["id"],
                    track,
                    row["internal_reference_number"],
                    row.get("external_reference_number"),
                    row.get("ircs"),
                    row["vessel_name"],
                    row["flag_state"],
                    row["latitude"],
                    row["longitude"],
                    pd.Timestamp(row["datetime_utc"]).to_pydatetime(),
                    row["is_at_port"],
                    row["is_fishing"],
                ),
            )
    conn.commit()


def track_rows(cfr, points, start, first_id, fishing=True, at_port=False, step=30):
    return pd.DataFrame(
        [
            {
                "id": first_id + i,
                "internal_reference_number": cfr,
                "ircs": None,
                "external_reference_number": None,
                "vessel_name": f"V {cfr}",
                "flag_state": "FR",
                "latitude": lat,
                "longitude": lon,
                "datetime_utc": start + timedelta(minutes=step * i),
                "is_fishing": fishing,
                "is_at_port": at_port,
            }
            for i, (lat, lon) in enumerate(points)
        ]
    )


def insert_report(conn, number: str, cfr: str, log_type: str, when: datetime, value=None):
    conn.execute(
        "INSERT INTO logbook.logbook_raw_messages (operation_number, transmission_format, "
        "xml_message, content_sha256) VALUES (%s, 'ERS', '<x/>', md5(%s))",
        (number, number),
    )
    conn.execute(
        """
        INSERT INTO logbook.logbook_reports (operation_number, operation_type, report_id, cfr,
            log_type, value, transmission_format, activity_datetime_utc, operation_datetime_utc)
        VALUES (%s, 'DAT', %s, %s, %s, %s, 'ERS', %s, %s)
        """,
        (number, number, cfr, log_type, Jsonb(value or {}), when, when),
    )


@pytest.fixture
def conn(warehouse: WarehouseResource):
    with warehouse.connect() as connection:
        store.load_zones(
            connection,
            [
                Zone(CLOSED, "regulatory", shapely.box(-4.7, 47.3, -4.3, 47.7)),
                Zone("EEZ FRA", "eez", shapely.box(-8.0, 43.0, 3.0, 51.5)),
            ],
        )
        connection.commit()
        yield connection


def _pending(conn) -> list[tuple]:
    return conn.execute(
        "SELECT alert_type, vessel_key, status, close_reason FROM alerts.pending_alerts "
        "ORDER BY alert_type, vessel_key"
    ).fetchall()


def test_position_alert_idempotent_then_closed_when_window_moves(conn, warehouse) -> None:
    crossing = [(47.4, -4.9), (47.5, -4.5), (47.55, -4.45), (47.8, -4.1)]
    insert_positions(conn, track_rows("FRA1", crossing, NOW - timedelta(hours=3), 1))
    insert_positions(
        conn, track_rows("FRA2", [(46, -3), (46.1, -3.1)], NOW - timedelta(hours=3), 100)
    )
    conn.commit()
    with warehouse.adbc() as adbc:
        first = run_position_alerts(conn, adbc, NOW)
        conn.commit()
        assert first.counts["opened"] == 1
        [row] = conn.execute(
            "SELECT id, evidence, specification_id FROM alerts.pending_alerts"
        ).fetchall()
        assert row[1]["zones"] == [CLOSED] and row[1]["position_ids"] == [2, 3]
        again = run_position_alerts(conn, adbc, NOW + timedelta(minutes=10))
        conn.commit()
        assert again.counts["opened"] == 0 and again.counts["refreshed"] == 1
        assert conn.execute("SELECT id FROM alerts.pending_alerts").fetchall() == [(row[0],)]
        later = run_position_alerts(conn, adbc, NOW + timedelta(hours=30))
        conn.commit()
    assert later.counts["closed"] == 1
    assert _pending(conn) == [("POSITION_ALERT", "CFR:FRA1", "closed", "cleared")]
    events = conn.execute("SELECT event FROM alerts.pending_alert_events ORDER BY id").fetchall()
    assert events == [("opened",), ("closed",)]


def test_silencing_closes_and_suppresses_then_expires(conn, warehouse) -> None:
    crossing = [(47.5, -4.5), (47.55, -4.45)]
    insert_positions(conn, track_rows("FRA1", crossing, NOW - timedelta(hours=1), 1))
    conn.commit()
    with warehouse.adbc() as adbc:
        run_position_alerts(conn, adbc, NOW)
        closed = store.silence(conn, "CFR:FRA1", "POSITION_ALERT", NOW + timedelta(hours=2), NOW)
        assert closed == 1
        result = run_position_alerts(conn, adbc, NOW + timedelta(minutes=5))
        assert result.counts["silenced"] == 1 and result.counts["opened"] == 0
        assert _pending(conn) == [("POSITION_ALERT", "CFR:FRA1", "closed", "silenced")]
        expired = run_position_alerts(conn, adbc, NOW + timedelta(hours=3))
        assert expired.counts["reopened"] == 1  # same vessel, same day, silence over
    conn.commit()


def test_validated_alert_is_not_raised_again(conn, warehouse) -> None:
    insert_positions(conn, track_rows("FRA1", [(47.5, -4.5)], NOW - timedelta(hours=1), 1))
    with warehouse.adbc() as adbc:
        run_position_alerts(conn, adbc, NOW)
        [(alert_id,)] = conn.execute("SELECT id::text FROM alerts.pending_alerts").fetchall()
        assert store.validate_alert(conn, alert_id, NOW)
        run_position_alerts(conn, adbc, NOW + timedelta(minutes=5))
    assert conn.execute("SELECT count(*) FROM alerts.current_pending_alerts").fetchone() == (0,)
    assert _pending(conn) == [("POSITION_ALERT", "CFR:FRA1", "validated", None)]


def test_missing_far_then_far_arrives(conn, warehouse) -> None:
    day = datetime(2024, 5, 7, tzinfo=UTC)
    fishing = [(47.0, -5.0 + i * 0.01) for i in range(5)]
    insert_positions(conn, track_rows("FRA3", fishing, day + timedelta(hours=9), 1))
    settings = MissingFarSettings()
    with warehouse.adbc() as adbc:
        first = run_missing_far(conn, adbc, NOW, settings)
        assert first.counts["opened"] == 1
        assert _pending(conn) == [("MISSING_FAR", "CFR:FRA3", "pending", None)]
        insert_report(conn, "op-1", "FRA3", "FAR", day + timedelta(hours=20))
        second = run_missing_far(conn, adbc, NOW + timedelta(hours=1), settings)
    assert second.counts["closed"] == 1
    assert _pending(conn) == [("MISSING_FAR", "CFR:FRA3", "closed", "cleared")]


def test_missing_dep(conn, warehouse) -> None:
    start = NOW - timedelta(hours=10)
    port = track_rows("FRA4", [(48.38, -4.49)] * 2, start, 1, fishing=False, at_port=True)
    sea = track_rows("FRA4", [(48.3, -4.7), (48.2, -4.9)], start + timedelta(hours=1), 10, False)
    insert_positions(conn, pd.concat([port, sea]))
    with warehouse.adbc() as adbc:
        result = run_missing_dep(conn, adbc, NOW, MissingDepSettings(tolerance_hours=2))
        assert result.counts["opened"] == 1
        insert_report(conn, "op-2", "FRA4", "DEP", start + timedelta(minutes=50))
        result = run_missing_dep(conn, adbc, NOW, MissingDepSettings(tolerance_hours=2))
    assert result.counts["closed"] == 1


def _last_position(conn, cfr: str, when: datetime, at_port: bool = False) -> None:
    conn.execute("DELETE FROM positions.last_positions WHERE cfr = %s", (cfr,))
    conn.execute(
        """
        INSERT INTO positions.last_positions (track_id, id, cfr, vessel_name, flag_state,
            latitude, longitude, last_position_datetime_utc, emission_period_s, is_at_port)
        VALUES (%s, %s, %s, 'V', 'FR', 47, -5, %s, 3600, %s)
        """,
        (abs(hash(cfr)) % 10**9, int(when.timestamp()), cfr, when, at_port),
    )


def test_beacon_lifecycle(conn) -> None:
    settings = BeaconSettings(at_sea_multiple=4, at_port_multiple=24)
    _last_position(conn, "SILENT", NOW - timedelta(hours=5))
    _last_position(conn, "FINE", NOW - timedelta(hours=1))
    _last_position(conn, "QUAY", NOW - timedelta(hours=5), at_port=True)
    result = run_beacons(conn, NOW, settings)
    assert result.counts["opened"] == 1
    assert _pending(conn) == [("SILENT_BEACON", "CFR:SILENT", "pending", None)]
    row = conn.execute(
        "SELECT stage, vessel_status, detected_at, at_sea_at FROM alerts.beacon_malfunctions"
    ).fetchone()
    assert row == ("AT_SEA", "AT_SEA", NOW, NOW)
    assert run_beacons(conn, NOW + timedelta(minutes=10), settings).counts["opened"] == 0
    _last_position(conn, "SILENT", NOW + timedelta(minutes=20))
    resolved = run_beacons(conn, NOW + timedelta(minutes=30), settings)
    assert resolved.counts["closed"] == 1
    stage, resolved_at, resumed_at = conn.execute(
        "SELECT stage, resolved_at, resumed_at FROM alerts.beacon_malfunctions"
    ).fetchone()
    assert stage == "RESOLVED" and resumed_at == NOW + timedelta(minutes=20)
    assert _pending(conn) == [("SILENT_BEACON", "CFR:SILENT", "closed", "cleared")]


def test_bad_specification_is_reported_not_fatal(conn, warehouse) -> None:
    conn.execute(
        "INSERT INTO alerts.position_alert_specifications (name, zones) "
        "VALUES ('broken', '[\"Nowhere\"]'), ('bad mesh', '[]')"
    )
    conn.execute(
        "UPDATE alerts.position_alert_specifications SET gears = "
        '\'[{"gear": "OTB", "min_mesh": 9, "max_mesh": 1}]\' WHERE name = \'bad mesh\''
    )
    with warehouse.adbc() as adbc:
        result = run_position_alerts(conn, adbc, NOW)
    assert any("'Nowhere'" in e for e in result.errors)
    assert any("bad mesh" in e for e in result.errors)


def test_plan_written_set_based_in_one_transaction_and_in_autocommit(conn, warehouse) -> None:
    from platform_assets.alerts.pending import POSITION_ALERT, Plan, ProducedAlert

    def alert(key: str, zones: list[str]) -> ProducedAlert:
        return ProducedAlert(
            alert_type=POSITION_ALERT,
            vessel_key=key,
            episode_start=NOW.replace(hour=0, minute=0),
            triggered_at=NOW,
            title="t",
            vessel_name=None,
            evidence={"position_ids": [1], "zones": zones},
        )

    first, second = alert("CFR:A", ["z1"]), alert("CFR:B", ["z2"])
    # two plans in the caller's one transaction: the temporary table is reused
    store.apply_plan(conn, Plan(insert=[(first.episode_id, first)]), NOW)
    store.apply_plan(conn, Plan(insert=[(second.episode_id, second)]), NOW)
    conn.commit()
    with warehouse.connect(autocommit=True) as auto:
        moved = alert("CFR:A", ["z3"])
        store.apply_plan(
            auto,
            Plan(refresh=[(first.episode_id, moved)], close=[(second.episode_id, "cleared")]),
            NOW,
        )
    rows = conn.execute(
        "SELECT vessel_key, status, close_reason, evidence -> 'zones' FROM alerts.pending_alerts "
        "ORDER BY vessel_key"
    ).fetchall()
    assert rows == [("CFR:A", "pending", None, ["z3"]), ("CFR:B", "closed", "cleared", ["z2"])]
    events = conn.execute(
        "SELECT event, reason FROM alerts.pending_alert_events ORDER BY id"
    ).fetchall()
    assert events == [("opened", None), ("opened", None), ("closed", "cleared")]


def test_alert_assets_materialize_with_their_metadata(conn, warehouse) -> None:
    from dagster import materialize

    from platform_assets.alerts.assets import ALERT_ASSETS

    crossing = [(47.4, -4.9), (47.5, -4.5), (47.55, -4.45), (47.8, -4.1)]
    insert_positions(conn, track_rows("FRA1", crossing, NOW - timedelta(hours=3), 1))
    conn.commit()
    families = ("position_alerts", "missing_far_alerts", "missing_dep_alerts")
    as_of = {"config": {"as_of": NOW.isoformat()}}
    result = materialize(
        ALERT_ASSETS,
        resources={"warehouse": warehouse, "dry_run": DryRunResource()},
        run_config={
            "ops": {f"alerts__{name}": as_of for name in (*families, "beacon_malfunctions")}
        },
    )
    assert result.success
    meta = {
        event.materialization.asset_key.path[-1]: event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert set(meta) == {*families, "zones", "beacon_malfunctions", "pending_alerts"}
    for name in families:
        assert meta[name]["as_of"].value == NOW.isoformat()
        assert set(meta[name]["changes"].value) >= {"opened", "closed", "silenced"}
    assert meta["position_alerts"]["dagster/row_count"].value >= 1
    assert "open_malfunctions" in meta["beacon_malfunctions"]
    assert meta["pending_alerts"]["by_type"].value.get("POSITION_ALERT", 0) >= 1
