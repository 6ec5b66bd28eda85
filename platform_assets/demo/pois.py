"""Points of interest in the demo: seed the first delivery, switch to the second, summarise.

The demo runs the POI assets once on delivery 1 (`prepare_demo`), calls `second_delivery`, runs
them again (e.g. `pois_refresh_job`), then prints `summary`: one POI updated with one history
version, one deactivated, one record in quarantine.
"""

from __future__ import annotations

from platform_assets.samples.pois.fixtures import apply_delivery, apply_second_delivery
from resources.warehouse import WarehouseResource, fetch_one


def prepare_demo(warehouse: WarehouseResource) -> None:
    """Put delivery 1 in place (events pages + facilities file under <state>/samples/pois)."""
    apply_delivery(1)


def second_delivery(warehouse: WarehouseResource) -> None:
    """Put delivery 2 in place: EV-1003 changed, EV-1005 gone."""
    apply_second_delivery()


def summary(warehouse: WarehouseResource) -> list[str]:
    """Per source active/inactive POIs, the history kept, the quarantine."""
    with warehouse.connect() as conn:
        by_source = conn.execute(
            "SELECT source, count(*) FILTER (WHERE active), count(*) FILTER (WHERE NOT active), "
            "count(*) FILTER (WHERE valid_from > first_seen_at) "
            "FROM pois.registered_poi GROUP BY 1 ORDER BY 1"
        ).fetchall()
        history = conn.execute(
            "SELECT original_id, valid_from, valid_to FROM pois.poi_history "
            "ORDER BY valid_to DESC LIMIT 3"
        ).fetchall()
        history_total = fetch_one(conn, "SELECT count(*) FROM pois.poi_history")[0]
        inactive = conn.execute(
            "SELECT source, original_id, deactivated_at FROM pois.registered_poi "
            "WHERE NOT active ORDER BY deactivated_at DESC LIMIT 3"
        ).fetchall()
        quarantined = conn.execute(
            "SELECT source, original_id, stage, left(error, 90) FROM pois.quarantine "
            "ORDER BY id LIMIT 3"
        ).fetchall()
        quarantine_total = fetch_one(conn, "SELECT count(*) FROM pois.quarantine")[0]
    lines = ["points of interest:"]
    lines += [
        f"  {source:<11} {active:>4} active, {gone} inactive, {updated} updated since first seen"
        for source, active, gone, updated in by_source
    ]
    lines.append(f"  history versions kept: {history_total}")
    lines += [f"    {oid}: version valid {a:%H:%M:%S} -> {b:%H:%M:%S}" for oid, a, b in history]
    lines += [
        f"  deactivated (gone from its source): {s}/{oid} at {t:%H:%M:%S}" for s, oid, t in inactive
    ]
    lines.append(f"  quarantined records: {quarantine_total} (pois.quarantine; pois_replay_job)")
    lines += [f"    {s}/{oid} [{stage}]: {err}" for s, oid, stage, err in quarantined]
    return lines
