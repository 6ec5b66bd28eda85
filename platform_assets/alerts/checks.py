"""Checks of the alerts: specifications an operator broke, alerts without their reasons."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from platform_assets.alerts.assets import PENDING_ALERTS, POSITION_ALERTS
from resources.warehouse import WarehouseResource, fetch_one


@asset_check(
    asset=POSITION_ALERTS,
    description="every specification validates and names only known zones (a broken one is "
    "skipped by the run, so it would silently raise nothing)",
)
def specifications_are_usable(warehouse: WarehouseResource) -> AssetCheckResult:
    """Validate every stored specification and its zone names."""
    from platform_assets.alerts import store  # pandas, psycopg: not at definitions load

    with warehouse.connect() as conn:
        specs, errors = store.read_specifications(conn)
        known = {name for (name,) in conn.execute("SELECT name FROM alerts.zones").fetchall()}
    for spec in specs:
        missing = sorted(set(spec.zones) - known)
        if missing:
            errors.append(f"specification id={spec.id} {spec.name!r}: unknown zone(s) {missing}")
    return AssetCheckResult(
        passed=not errors,
        severity=AssetCheckSeverity.WARN,
        metadata={"specifications": len(specs), "errors": MetadataValue.json(errors)},
    )


@asset_check(
    asset=PENDING_ALERTS,
    description="every pending alert says why it fired (position ids or report ids)",
)
def pending_alerts_have_evidence(warehouse: WarehouseResource) -> AssetCheckResult:
    """Count pending alerts whose evidence names neither positions nor reports."""
    with warehouse.connect() as conn:
        (missing,) = fetch_one(
            conn,
            """
            SELECT count(*) FROM alerts.current_pending_alerts
            WHERE jsonb_array_length(COALESCE(evidence -> 'position_ids', '[]')) = 0
              AND jsonb_array_length(COALESCE(evidence -> 'report_ids', '[]')) = 0
            """,
        )
    return AssetCheckResult(passed=missing == 0, metadata={"without_evidence": missing})


ALERTS_CHECKS = [specifications_are_usable, pending_alerts_have_evidence]
