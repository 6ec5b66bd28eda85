"""Alerts in the demo: the sample zones and example specifications, then the pending alerts."""

from __future__ import annotations

from platform_assets.alerts.store import pending_summary
from platform_assets.samples.alerts import seed_alerts_demo
from resources.warehouse import WarehouseResource

DEMO_RULE = "Fishing in the closed zone off Brittany"


def prepare_demo(warehouse: WarehouseResource) -> None:
    """Load the sample zones (a closed zone at 47.5N 4.5W among them) and the demo's rule."""
    with warehouse.connect() as conn:
        seed_alerts_demo(conn)
        # the sample's zone crossing is on its first day: look back over both days
        conn.execute(
            "UPDATE alerts.position_alert_specifications SET track_analysis_depth_hours = 48 "
            "WHERE name = %s",
            (DEMO_RULE,),
        )
        conn.commit()


def summary(warehouse: WarehouseResource) -> list[str]:
    """The pending alerts, as the monitoring application lists them."""
    with warehouse.connect() as conn:
        return ["pending alerts:", *("  " + line for line in pending_summary(conn))]
