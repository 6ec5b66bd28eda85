"""SQL of the alerts domain. No Dagster: functions take an open psycopg connection (or, for the
one large read, an ADBC connection that returns Arrow) and leave the commit to the caller.

Tables read from other domains: `positions.positions` (enriched, partitioned by day, pruned on
`datetime_utc`), `positions.last_positions`, `logbook.logbook_reports_resolved`,
`reference.vessels`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import shapely
from psycopg.types.json import Jsonb

from platform_assets.alerts.beacons import BeaconPlan, OpenMalfunction
from platform_assets.alerts.pending import (
    CLOSED,
    PENDING,
    VALIDATED,
    Plan,
    ProducedAlert,
    Scope,
    Silence,
    StoredAlert,
)
from platform_assets.alerts.specifications import (
    PositionAlertSpecification,
    SpecificationError,
    parse_specification,
)
from platform_assets.alerts.zones import Zone, checked_zone

SPEC_COLUMNS = (
    "id, name, description, offence_code, threat, threat_characterization, "
    "track_analysis_depth_hours, only_fishing_positions, gears, species, flag_states, "
    "vessel_ids, district_codes, zones, min_depth_m, is_active, schedule"
)


# --- zones and specifications ---------------------------------------------------------------


def load_zones(conn: psycopg.Connection, zones: Iterable[Zone]) -> int:
    """Insert or replace zones by name (WKB + bounding box); returns how many were written."""
    rows = []
    for zone in zones:
        minx, miny, maxx, maxy = zone.geometry.bounds
        rows.append(
            (
                zone.name,
                zone.layer,
                shapely.to_wkb(zone.geometry),
                zone.depth_m,
                minx,
                miny,
                maxx,
                maxy,
                zone.source,
            )
        )
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO alerts.zones (name, layer, geometry_wkb, depth_m, min_longitude,
                min_latitude, max_longitude, max_latitude, source)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET layer = EXCLUDED.layer,
                geometry_wkb = EXCLUDED.geometry_wkb, depth_m = EXCLUDED.depth_m,
                min_longitude = EXCLUDED.min_longitude, min_latitude = EXCLUDED.min_latitude,
                max_longitude = EXCLUDED.max_longitude, max_latitude = EXCLUDED.max_latitude,
                source = EXCLUDED.source, loaded_at = now()
            """,
            rows,
        )
    return len(rows)


def read_zones(conn: psycopg.Connection, names: Iterable[str] | None = None) -> list[Zone]:
    """Zones from the table (all, or those named)."""
    sql = "SELECT name, layer, geometry_wkb, depth_m, source FROM alerts.zones"
    params: tuple[Any, ...] = ()
    if names is not None:
        sql += " WHERE name = ANY(%s)"
        params = (list(names),)
    zones = []
    for name, layer, wkb, depth, source in conn.execute(sql + " ORDER BY name", params):
        zones.append(
            checked_zone(
                Zone(name, layer, shapely.from_wkb(bytes(wkb)), depth, source),
                f"alerts.zones {name!r}",
            )
        )
    return zones


def read_specifications(
    conn: psycopg.Connection,
) -> tuple[list[PositionAlertSpecification], list[str]]:
    """Every stored specification that validates, and one error line per row that does not."""
    cur = conn.execute(
        f"SELECT {SPEC_COLUMNS} FROM alerts.position_alert_specifications ORDER BY id"
    )
    names = [d.name for d in cur.description or ()]
    specs, errors = [], []
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        try:
            specs.append(parse_specification(row))
        except SpecificationError as exc:
            errors.append(str(exc))
    return specs, errors


def insert_specification(conn: psycopg.Connection, spec: PositionAlertSpecification) -> int:
    """Store a specification (its name is unique); returns its id."""
    data = spec.model_dump(mode="json", exclude={"id"})
    json_fields = ("gears", "species", "flag_states", "vessel_ids", "district_codes", "zones")
    for name in (*json_fields, "schedule"):
        data[name] = Jsonb(data[name])
    columns = ", ".join(data)
    placeholders = ", ".join(f"%({c})s" for c in data)
    row = conn.execute(
        f"INSERT INTO alerts.position_alert_specifications ({columns}) VALUES ({placeholders}) "
        f"ON CONFLICT (name) DO UPDATE SET ({columns}) = ({placeholders}), updated_at = now() "
        "RETURNING id",
        data,
    ).fetchone()
    assert row is not None
    return int(row[0])


# --- inputs from other domains ----------------------------------------------------------------

POSITION_SELECT = (
    "id",
    "internal_reference_number",
    "external_reference_number",
    "ircs",
    "vessel_name",
    "flag_state",
    "latitude",
    "longitude",
    "datetime_utc",
    "is_fishing",
    "is_at_port",
)


def read_positions(
    adbc: Any, start: datetime, end: datetime, fishing_only: bool = False
) -> pd.DataFrame:
    """Enriched positions with start < datetime_utc <= end, as a DataFrame (Arrow-backed read).

    The bounds are rendered from datetimes (never user text) so the planner prunes partitions.
    """
    table = read_position_window(adbc, start, end, POSITION_SELECT, fishing_only)
    frame = table.to_pandas()
    frame["datetime_utc"] = pd.to_datetime(frame["datetime_utc"], utc=True)
    for column in ("is_fishing", "is_at_port"):
        frame[column] = frame[column].astype("boolean")
    return frame


def read_position_window(
    adbc: Any, start: datetime, end: datetime, columns: Sequence[str], fishing_only: bool = False
) -> pa.Table:
    """Some columns of the enriched positions with start < datetime_utc <= end, as Arrow (binary
    COPY out through ADBC, no conversion to Python objects).

    The bounds are rendered from datetimes (never user text) so the planner prunes partitions.
    """
    where = f"datetime_utc > '{start.isoformat()}' AND datetime_utc <= '{end.isoformat()}'"
    if fishing_only:
        where += " AND is_fishing"
    with adbc.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM positions.positions WHERE {where}")
        return cur.fetch_arrow_table()


def read_last_positions(conn: psycopg.Connection) -> pd.DataFrame:
    """`positions.last_positions` in the column names of the beacon check."""
    cur = conn.execute(
        """
        SELECT id, cfr AS internal_reference_number,
               external_immatriculation AS external_reference_number, ircs, vessel_name,
               flag_state, latitude, longitude, last_position_datetime_utc, emission_period_s,
               is_at_port
        FROM positions.last_positions
        """
    )
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or ()])


def read_register(conn: psycopg.Connection) -> pd.DataFrame:
    """Register columns the specification filters use."""
    cur = conn.execute(
        "SELECT vessel_id, cfr, ircs, external_immatriculation, district_code, "
        "declared_fishing_gears FROM reference.vessels"
    )
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or ()])


def read_reports(
    conn: psycopg.Connection,
    log_types: Sequence[str],
    start: datetime,
    end: datetime,
    with_value: bool = False,
) -> pd.DataFrame:
    """Resolved logbook reports of some log types with activity in [start, end]."""
    value = ", value" if with_value else ""
    cur = conn.execute(
        f"""
        SELECT report_id, cfr, ircs, external_identification, log_type,
               activity_datetime_utc{value}
        FROM logbook.logbook_reports_resolved
        WHERE log_type = ANY(%s) AND activity_datetime_utc BETWEEN %s AND %s
          AND NOT is_test_message
        """,
        (list(log_types), start, end),
    )
    frame = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or ()])
    if not frame.empty:
        frame["activity_datetime_utc"] = pd.to_datetime(frame["activity_datetime_utc"], utc=True)
    return frame


# --- pending alerts -----------------------------------------------------------------------


def read_silences(conn: psycopg.Connection, now: datetime) -> list[Silence]:
    """Silences still in force at `now`."""
    rows = conn.execute(
        "SELECT vessel_key, alert_type, silenced_until, specification_id "
        "FROM alerts.silenced_alerts WHERE silenced_until > %s",
        (now,),
    ).fetchall()
    return [Silence(k, t, u, s) for k, t, u, s in rows]


def read_stored(
    conn: psycopg.Connection, scope: Scope, produced: Sequence[ProducedAlert]
) -> list[StoredAlert]:
    """Open alerts of the scope's type (reconcile narrows to the scope) and any alert whose id a
    produced alert would take."""
    ids = [a.episode_id for a in produced]
    rows = conn.execute(
        """
        SELECT id::text, alert_type, specification_id, vessel_key, episode_start, status,
               cleared_at
        FROM alerts.pending_alerts
        WHERE (alert_type = %s AND status <> 'closed' AND cleared_at IS NULL)
           OR id = ANY(%s::uuid[])
        """,
        (scope.alert_type, ids),
    ).fetchall()
    return [StoredAlert(*row) for row in rows]


_ALERT_COLUMNS = (
    "id, alert_type, specification_id, vessel_key, internal_reference_number, "
    "external_reference_number, ircs, vessel_name, flag_state, title, episode_start, "
    "triggered_at, evidence, details"
)


def _alert_row(alert_id: str, alert: ProducedAlert) -> tuple[Any, ...]:
    return (
        alert_id,
        alert.alert_type,
        alert.specification_id,
        alert.vessel_key,
        alert.internal_reference_number,
        alert.external_reference_number,
        alert.ircs,
        alert.vessel_name,
        alert.flag_state,
        alert.title,
        alert.episode_start,
        alert.triggered_at,
        json.dumps(alert.evidence, default=str),
        json.dumps(alert.details, default=str),
    )


def apply_plan(conn: psycopg.Connection, plan: Plan, now: datetime) -> dict[str, int]:
    """Write a reconciliation plan set-based: the new and refreshed alerts are copied (COPY) into
    a temporary table, then one INSERT, one UPDATE per kind of change, and the events by COPY."""
    refreshed = plan.refresh + plan.reopen
    # the ON COMMIT DROP table needs a transaction: the caller's, or one of our own when the
    # connection is in autocommit mode
    block = conn.transaction() if conn.autocommit else contextlib.nullcontext()
    with block, conn.cursor() as cur:
        if plan.insert or refreshed:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS alerts_plan_rows ON COMMIT DROP AS "
                f"SELECT {_ALERT_COLUMNS} FROM alerts.pending_alerts WITH NO DATA"
            )
            cur.execute("TRUNCATE alerts_plan_rows")
            with cur.copy(f"COPY alerts_plan_rows ({_ALERT_COLUMNS}) FROM STDIN") as copy:
                for i, a in [*plan.insert, *refreshed]:
                    copy.write_row(_alert_row(i, a))
        if plan.insert:
            cur.execute(
                f"""
                INSERT INTO alerts.pending_alerts ({_ALERT_COLUMNS}, created_at, last_seen_at)
                SELECT {_ALERT_COLUMNS}, %(now)s, %(now)s FROM alerts_plan_rows
                WHERE id = ANY(%(ids)s::uuid[])
                """,
                {"now": now, "ids": [i for i, _ in plan.insert]},
            )
        if refreshed:
            cur.execute(
                """
                UPDATE alerts.pending_alerts p SET title = r.title,
                    triggered_at = r.triggered_at, evidence = r.evidence,
                    details = r.details, last_seen_at = %(now)s,
                    vessel_name = COALESCE(r.vessel_name, p.vessel_name),
                    status = CASE WHEN p.status = 'closed' THEN 'pending' ELSE p.status END,
                    close_reason = CASE WHEN p.status = 'closed' THEN NULL
                                        ELSE p.close_reason END,
                    closed_at = CASE WHEN p.status = 'closed' THEN NULL ELSE p.closed_at END,
                    cleared_at = CASE WHEN p.status = 'closed' THEN NULL ELSE p.cleared_at END
                FROM alerts_plan_rows r
                WHERE p.id = r.id AND r.id = ANY(%(ids)s::uuid[])
                """,
                {"now": now, "ids": [i for i, _ in refreshed]},
            )
        if plan.close:
            cur.execute(
                """
                UPDATE alerts.pending_alerts p SET status = 'closed', close_reason = c.reason,
                    closed_at = %s, cleared_at = %s
                FROM unnest(%s::uuid[], %s::text[]) AS c (id, reason)
                WHERE p.id = c.id AND p.status = 'pending'
                """,
                (now, now, [i for i, _ in plan.close], [r for _, r in plan.close]),
            )
        if plan.clear_validated:
            cur.execute(
                "UPDATE alerts.pending_alerts SET cleared_at = %s WHERE id = ANY(%s::uuid[])",
                (now, plan.clear_validated),
            )
        events = (
            [(i, "opened", None) for i, _ in plan.insert]
            + [(i, "reopened", None) for i, _ in plan.reopen]
            + [(i, "closed", reason) for i, reason in plan.close]
            + [(i, "cleared", None) for i in plan.clear_validated]
        )
        if events:
            with cur.copy(
                "COPY alerts.pending_alert_events (alert_id, event, reason, at) FROM STDIN"
            ) as copy:
                for i, e, r in events:
                    copy.write_row((i, e, r, now))
    return plan.counts()


def validate_alert(conn: psycopg.Connection, alert_id: str, now: datetime) -> bool:
    """An operator validates a pending alert; False when it is not pending."""
    row = conn.execute(
        "UPDATE alerts.pending_alerts SET status = %s, validated_at = %s "
        "WHERE id = %s AND status = %s RETURNING id",
        (VALIDATED, now, alert_id, PENDING),
    ).fetchone()
    if row is not None:
        conn.execute(
            "INSERT INTO alerts.pending_alert_events (alert_id, event, at) "
            "VALUES (%s, 'validated', %s)",
            (alert_id, now),
        )
    return row is not None


def silence(
    conn: psycopg.Connection,
    vessel_key: str,
    alert_type: str,
    until: datetime,
    now: datetime,
    specification_id: int | None = None,
    reason: str | None = None,
) -> int:
    """Silence alerts of a type for a vessel until a date, closing its open pending ones now
    (reason `silenced`); returns how many were closed."""
    conn.execute(
        "INSERT INTO alerts.silenced_alerts (vessel_key, alert_type, specification_id, "
        "silenced_until, reason) VALUES (%s, %s, %s, %s, %s)",
        (vessel_key, alert_type, specification_id, until, reason),
    )
    closed = conn.execute(
        """
        UPDATE alerts.pending_alerts SET status = %s, close_reason = 'silenced', closed_at = %s,
            cleared_at = %s
        WHERE vessel_key = %s AND alert_type = %s AND status = %s
          AND (%s::bigint IS NULL OR specification_id = %s::bigint)
        RETURNING id
        """,
        (CLOSED, now, now, vessel_key, alert_type, PENDING, specification_id, specification_id),
    ).fetchall()
    if closed:
        conn.cursor().executemany(
            "INSERT INTO alerts.pending_alert_events (alert_id, event, reason, at) "
            "VALUES (%s, 'closed', 'silenced', %s)",
            [(row[0], now) for row in closed],
        )
    return len(closed)


def pending_summary(conn: psycopg.Connection, limit: int = 50) -> list[str]:
    """One line per pending alert (latest first): what the demo prints."""
    rows = conn.execute(
        """
        SELECT alert_type, vessel_key, COALESCE(vessel_name, ''), title, triggered_at, evidence
        FROM alerts.current_pending_alerts ORDER BY triggered_at DESC, vessel_key LIMIT %s
        """,
        (limit,),
    ).fetchall()
    lines = []
    for kind, key, name, title, when, evidence in rows:
        why = []
        if evidence.get("zones"):
            why.append("zones " + ", ".join(evidence["zones"]))
        if evidence.get("position_ids"):
            why.append(f"{len(evidence['position_ids'])} position(s)")
        lines.append(
            f"{kind:<15} {key:<20} {name:<16} {when:%Y-%m-%d %H:%M}Z  {title}"
            + (f"  [{'; '.join(why)}]" if why else "")
        )
    return lines


def count_by_status(conn: psycopg.Connection, alert_type: str | None = None) -> dict[str, int]:
    """Alerts per status (of one type, or all)."""
    rows = conn.execute(
        "SELECT status, count(*) FROM alerts.pending_alerts "
        "WHERE %s::text IS NULL OR alert_type = %s GROUP BY status",
        (alert_type, alert_type),
    ).fetchall()
    return {status: int(n) for status, n in rows}


# --- beacon malfunctions ------------------------------------------------------------------


def read_open_malfunctions(conn: psycopg.Connection) -> list[OpenMalfunction]:
    """Malfunctions not yet resolved."""
    rows = conn.execute(
        "SELECT id, vessel_key, silent_since, vessel_status FROM alerts.beacon_malfunctions "
        "WHERE resolved_at IS NULL"
    ).fetchall()
    return [OpenMalfunction(*row) for row in rows]


def read_open_malfunction_rows(conn: psycopg.Connection) -> pd.DataFrame:
    """Open malfunctions, every column (for the SILENT_BEACON alerts)."""
    cur = conn.execute("SELECT * FROM alerts.beacon_malfunctions WHERE resolved_at IS NULL")
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or ()])


def apply_beacon_plan(conn: psycopg.Connection, plan: BeaconPlan, now: datetime) -> dict[str, int]:
    """Open, move and resolve malfunctions, dating each step."""
    with conn.cursor() as cur:
        if plan.opened:
            cur.executemany(
                """
                INSERT INTO alerts.beacon_malfunctions (vessel_key, internal_reference_number,
                    external_reference_number, ircs, vessel_name, flag_state, last_position_id,
                    latitude, longitude, silent_since, emission_period_s, threshold_s, stage,
                    vessel_status, detected_at, at_sea_at, at_port_at)
                VALUES (%(vessel_key)s, %(internal_reference_number)s,
                    %(external_reference_number)s, %(ircs)s, %(vessel_name)s, %(flag_state)s,
                    %(last_position_id)s, %(latitude)s, %(longitude)s, %(silent_since)s,
                    %(emission_period_s)s, %(threshold_s)s, %(vessel_status)s,
                    %(vessel_status)s, %(now)s,
                    CASE WHEN %(vessel_status)s = 'AT_SEA' THEN %(now)s END,
                    CASE WHEN %(vessel_status)s = 'AT_PORT' THEN %(now)s END)
                """,
                [{**row, "now": now} for row in plan.opened],
            )
        if plan.status_changes:
            cur.executemany(
                """
                UPDATE alerts.beacon_malfunctions SET vessel_status = %(status)s,
                    stage = %(status)s,
                    at_sea_at = CASE WHEN %(status)s = 'AT_SEA' THEN %(now)s ELSE at_sea_at END,
                    at_port_at = CASE WHEN %(status)s = 'AT_PORT' THEN %(now)s
                                      ELSE at_port_at END
                WHERE id = %(id)s
                """,
                [{"id": i, "status": s, "now": now} for i, s in plan.status_changes],
            )
        if plan.resolved:
            cur.executemany(
                "UPDATE alerts.beacon_malfunctions SET stage = 'RESOLVED', resolved_at = %s, "
                "resumed_at = %s WHERE id = %s",
                [(now, resumed, i) for i, resumed in plan.resolved],
            )
    return plan.counts()


def jsonable(value: Any) -> Any:
    """A JSON-ready copy (datetimes as ISO text) for Dagster metadata."""
    return json.loads(json.dumps(value, default=str))
