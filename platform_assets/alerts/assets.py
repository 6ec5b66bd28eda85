"""Dagster face of the alerts: one asset per family, all writing `alerts.pending_alerts`, and a
summary asset listing what is pending.

The alert families share one shape (resolve the evaluation instant, run the family, report its
counts), built by `_family_asset`; the heavy modules (store, run and the pure modules: pandas,
numpy, shapely, psycopg, pyarrow) are imported inside the asset bodies so that loading the
definitions stays cheap.

Dry run (tag `fishnet/dry_run=true`, the `dry_run` resource or FISHNET_DRY_RUN): every family
evaluates and reconciles as usual inside its transaction, reports the counts it would have
written, and rolls back.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from platform_assets.table_metadata import row_count, table_metadata
from resources.publisher import DryRunResource
from resources.settings import setting, setting_number
from resources.warehouse import WarehouseResource, fetch_one

if TYPE_CHECKING:
    from platform_assets.alerts.run import FamilyResult
    from platform_assets.ops.dry_run import DryRun

GROUP = "alerts"
KINDS = {"postgres", "pandas", "shapely"}
SAMPLE_ZONES_DIR = Path(__file__).resolve().parents[1] / "samples" / "alerts"

POSITIONS = AssetKey(["positions", "positions"])
LAST_POSITIONS = AssetKey(["positions", "last_positions"])
LOGBOOK = AssetKey(["logbook", "logbook_reports_resolved"])
VESSELS = AssetKey(["reference", "vessels"])

ZONES = AssetKey(["alerts", "zones"])
POSITION_ALERTS = AssetKey(["alerts", "position_alerts"])
MISSING_FAR_ALERTS = AssetKey(["alerts", "missing_far_alerts"])
MISSING_DEP_ALERTS = AssetKey(["alerts", "missing_dep_alerts"])
BEACON_MALFUNCTIONS = AssetKey(["alerts", "beacon_malfunctions"])
PENDING_ALERTS = AssetKey(["alerts", "pending_alerts"])

ZONES_COLUMNS = [
    ("name", "text", "zone name, referred to by specifications"),
    ("layer", "text", "eez, distance_to_shore, fao_area, regulatory or bathymetry"),
    ("geometry_wkb", "bytea", "polygon or multipolygon, WGS84 lon/lat, WKB"),
    ("depth_m", "double precision", "bathymetry zones: the sea is at least this deep"),
    ("min_longitude", "double precision", "bounding box"),
    ("source", "text", "file the zone came from"),
]
PENDING_COLUMNS = [
    ("id", "uuid", "UUID5 of (type, specification, vessel, episode): stable across runs"),
    ("alert_type", "text", "POSITION_ALERT, MISSING_FAR, MISSING_DEP or SILENT_BEACON"),
    ("specification_id", "bigint", "position alerts: the specification that fired"),
    ("vessel_key", "text", "CFR:..., else IRCS:..., else EXT:..."),
    ("title", "text", "what an operator reads first"),
    ("episode_start", "timestamptz", "day, departure or silence start the alert is about"),
    ("triggered_at", "timestamptz", "time of the latest evidence"),
    ("status", "text", "pending, validated or closed (never deleted)"),
    ("close_reason", "text", "cleared (condition no longer holds) or silenced"),
    ("evidence", "jsonb", "why it fired: position_ids, report_ids, zones, counts"),
    ("last_seen_at", "timestamptz", "last run that still produced it"),
]
BEACON_COLUMNS = [
    ("id", "bigint", "malfunction id"),
    ("vessel_key", "text", "the vessel"),
    ("silent_since", "timestamptz", "time of the last position before the silence"),
    ("threshold_s", "double precision", "silence beyond which it opened (multiple of period)"),
    ("stage", "text", "AT_SEA, AT_PORT or RESOLVED"),
    ("detected_at", "timestamptz", "step dates: detected"),
    ("at_sea_at", "timestamptz", "step dates: classified at sea"),
    ("at_port_at", "timestamptz", "step dates: classified at port"),
    ("resolved_at", "timestamptz", "step dates: positions resumed (seen by a run)"),
    ("resumed_at", "timestamptz", "time of the first position after the silence"),
]


class AlertsConfig(Config):
    """When to compute the alerts (default: ALERTS_AS_OF, else now)."""

    as_of: str | None = Field(
        default=None,
        description="ISO datetime, or 'latest[+hours]' = latest stored position (+ hours)",
    )


def resolve_as_of(warehouse: WarehouseResource, override: str | None) -> datetime:
    """The evaluation instant: config, else ALERTS_AS_OF, else now (UTC)."""
    raw = setting("ALERTS_AS_OF", override)
    if not raw:
        return datetime.now(UTC)
    if raw.startswith("latest"):
        hours = float(raw[len("latest") :] or 0)
        with warehouse.connect() as conn:
            (latest,) = fetch_one(conn, "SELECT max(datetime_utc) FROM positions.positions")
        base = latest or datetime.now(UTC)
        return base + timedelta(minutes=1) + timedelta(hours=hours)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"ALERTS_AS_OF / as_of={raw!r} is not an ISO datetime or latest[+h]"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _number(name: str) -> float:
    value = setting_number(name)
    assert value is not None, name  # every alerts setting has a default
    return value


def _result(
    context: AssetExecutionContext, result: "FamilyResult", now: datetime
) -> dict[str, Any]:
    for error in result.errors:
        context.log.warning(error)
    context.log.info(
        f"{result.alert_type} as of {now:%Y-%m-%d %H:%M}Z: {result.produced} firing, "
        f"{result.counts} ({result.inputs})"
    )
    return row_count(
        result.produced,
        as_of=now.isoformat(),
        changes=MetadataValue.json(result.counts),
        inputs=MetadataValue.json(result.inputs),
        seconds=MetadataValue.json({k: round(v, 3) for k, v in result.seconds.items()}),
        errors=MetadataValue.json(result.errors),
    )


@asset(
    key=ZONES,
    group_name=GROUP,
    kinds=KINDS,
    description="Zones (EEZs, distance-to-shore bands, FAO areas, regulatory areas, bathymetry) "
    "loaded from GeoJSON files (ALERTS_ZONES_DIR, default the bundled samples).",
    metadata=table_metadata("alerts.zones", ZONES_COLUMNS),
)
def zones(
    context: AssetExecutionContext, warehouse: WarehouseResource, dry_run: DryRunResource
) -> MaterializeResult:
    """Load every *.geojson of the zones folder (replacing zones of the same name)."""
    from platform_assets.alerts import store
    from platform_assets.alerts.zones import read_zones_file
    from platform_assets.ops.dry_run import DryRun

    dry = DryRun.from_context(context, dry_run)
    folder = Path(setting("ALERTS_ZONES_DIR") or SAMPLE_ZONES_DIR)
    loaded = [z for path in sorted(folder.glob("*.geojson")) for z in read_zones_file(path)]
    with warehouse.connect() as conn:
        store.load_zones(conn, loaded)
        (total,) = fetch_one(conn, "SELECT count(*) FROM alerts.zones")
        layers = dict(
            conn.execute("SELECT layer, count(*) FROM alerts.zones GROUP BY 1").fetchall()
        )
        dry.finish(conn)
    context.log.info(f"{len(loaded)} zone(s) {'would be ' if dry else ''}loaded from {folder}")
    return MaterializeResult(
        metadata={
            **row_count(total, folder=str(folder), layers=MetadataValue.json(layers)),
            **dry.would_write("alerts.zones", len(loaded)),
        }
    )


FamilyRun = Callable[[WarehouseResource, datetime, "DryRun"], tuple["FamilyResult", dict[str, Any]]]
"""Runs one alert family as of an instant, committing unless dry; returns its result and extra
metadata."""


def _family_asset(
    key: AssetKey,
    *,
    deps: list[AssetKey],
    description: str,
    metadata: dict[str, Any],
    run: FamilyRun,
) -> AssetsDefinition:
    """The asset of an alert family: resolve the evaluation instant, run, report the counts."""

    @asset(
        key=key,
        group_name=GROUP,
        kinds=KINDS,
        deps=deps,
        description=description,
        metadata=metadata,
    )
    def _family(
        context: AssetExecutionContext,
        config: AlertsConfig,
        warehouse: WarehouseResource,
        dry_run: DryRunResource,
    ) -> MaterializeResult:
        from platform_assets.ops.dry_run import DryRun

        dry = DryRun.from_context(context, dry_run)
        now = resolve_as_of(warehouse, config.as_of)
        result, extra = run(warehouse, now, dry)
        if dry:
            context.log.info(f"dry run ({dry.origin}): every change above was rolled back")
        return MaterializeResult(
            metadata={**_result(context, result, now), **extra, **dry.metadata()}
        )

    return _family


def _run_position_alerts(
    warehouse: WarehouseResource, now: datetime, dry: "DryRun"
) -> tuple["FamilyResult", dict[str, Any]]:
    """Evaluate the specifications and reconcile their alerts."""
    from platform_assets.alerts.run import run_position_alerts

    with warehouse.connect() as conn, warehouse.adbc() as adbc:
        result = run_position_alerts(conn, adbc, now)
        dry.finish(conn)
    return result, {}


def _run_missing_far(
    warehouse: WarehouseResource, now: datetime, dry: "DryRun"
) -> tuple["FamilyResult", dict[str, Any]]:
    """Judge the last finished days."""
    from platform_assets.alerts.missing_declarations import MissingFarSettings
    from platform_assets.alerts.run import run_missing_far

    settings = MissingFarSettings(
        min_fishing_positions=int(_number("ALERTS_MISSING_FAR_MIN_FISHING_POSITIONS")),
        grace_hours=_number("ALERTS_MISSING_FAR_GRACE_HOURS"),
        lookback_days=int(_number("ALERTS_MISSING_FAR_LOOKBACK_DAYS")),
    )
    with warehouse.connect() as conn, warehouse.adbc() as adbc:
        result = run_missing_far(conn, adbc, now, settings)
        dry.finish(conn)
    return result, {}


def _run_missing_dep(
    warehouse: WarehouseResource, now: datetime, dry: "DryRun"
) -> tuple["FamilyResult", dict[str, Any]]:
    """Judge the recent departures."""
    from platform_assets.alerts.missing_declarations import MissingDepSettings
    from platform_assets.alerts.run import run_missing_dep

    settings = MissingDepSettings(
        tolerance_hours=_number("ALERTS_MISSING_DEP_TOLERANCE_HOURS"),
        lookback_hours=_number("ALERTS_MISSING_DEP_LOOKBACK_HOURS"),
        min_sea_positions=int(_number("ALERTS_MISSING_DEP_MIN_SEA_POSITIONS")),
    )
    with warehouse.connect() as conn, warehouse.adbc() as adbc:
        result = run_missing_dep(conn, adbc, now, settings)
        dry.finish(conn)
    return result, {}


def _run_beacons(
    warehouse: WarehouseResource, now: datetime, dry: "DryRun"
) -> tuple["FamilyResult", dict[str, Any]]:
    """Open, move and resolve malfunctions from the last positions."""
    from platform_assets.alerts.beacons import BeaconSettings
    from platform_assets.alerts.run import run_beacons

    settings = BeaconSettings(
        at_sea_multiple=_number("ALERTS_BEACON_AT_SEA_MULTIPLE"),
        at_port_multiple=_number("ALERTS_BEACON_AT_PORT_MULTIPLE"),
        default_period_minutes=_number("ALERTS_BEACON_DEFAULT_PERIOD_MINUTES"),
    )
    with warehouse.connect() as conn:
        result = run_beacons(conn, now, settings)
        (open_count,) = fetch_one(
            conn, "SELECT count(*) FROM alerts.beacon_malfunctions WHERE resolved_at IS NULL"
        )
        dry.finish(conn)
    return result, {"open_malfunctions": open_count}


def _pending_rows(alert_type: str) -> dict[str, Any]:
    return table_metadata("alerts.pending_alerts", PENDING_COLUMNS, alert_type=alert_type)


position_alerts = _family_asset(
    POSITION_ALERTS,
    deps=[POSITIONS, ZONES, VESSELS, LOGBOOK],
    description="POSITION_ALERT rows of alerts.pending_alerts: vessels with a position in the "
    "window of an active specification (alerts.position_alert_specifications) that passes "
    "every filter.",
    metadata=_pending_rows("POSITION_ALERT"),
    run=_run_position_alerts,
)
missing_far_alerts = _family_asset(
    MISSING_FAR_ALERTS,
    deps=[POSITIONS, LOGBOOK],
    description="MISSING_FAR rows of alerts.pending_alerts: fishing at sea on a day without a "
    "fishing-activity report (ALERTS_MISSING_FAR_* settings).",
    metadata=_pending_rows("MISSING_FAR"),
    run=_run_missing_far,
)
missing_dep_alerts = _family_asset(
    MISSING_DEP_ALERTS,
    deps=[POSITIONS, LOGBOOK],
    description="MISSING_DEP rows of alerts.pending_alerts: departures from port without a "
    "DEP within the tolerance (ALERTS_MISSING_DEP_* settings).",
    metadata=_pending_rows("MISSING_DEP"),
    run=_run_missing_dep,
)
beacon_malfunctions = _family_asset(
    BEACON_MALFUNCTIONS,
    deps=[LAST_POSITIONS],
    description="Silent beacons: malfunction episodes (detected -> at sea / at port -> "
    "resolved) and their SILENT_BEACON rows of alerts.pending_alerts.",
    metadata=table_metadata("alerts.beacon_malfunctions", BEACON_COLUMNS),
    run=_run_beacons,
)


@asset(
    key=PENDING_ALERTS,
    group_name=GROUP,
    kinds=KINDS,
    deps=[POSITION_ALERTS, MISSING_FAR_ALERTS, MISSING_DEP_ALERTS, BEACON_MALFUNCTIONS],
    description="What operators see: alerts.current_pending_alerts (pending alerts of every "
    "family), with counts by type and status.",
    metadata=table_metadata("alerts.current_pending_alerts", PENDING_COLUMNS),
)
def pending_alerts(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    """Summarise the pending alerts (the families wrote them)."""
    from platform_assets.alerts import store

    with warehouse.connect() as conn:
        lines = store.pending_summary(conn)
        (pending,) = fetch_one(conn, "SELECT count(*) FROM alerts.current_pending_alerts")
        by_type = dict(
            conn.execute(
                "SELECT alert_type, count(*) FROM alerts.current_pending_alerts GROUP BY 1"
            ).fetchall()
        )
        by_status = store.count_by_status(conn)
    for line in lines:
        context.log.info(line)
    return MaterializeResult(
        metadata=row_count(
            pending,
            by_type=MetadataValue.json(by_type),
            by_status=MetadataValue.json(by_status),
            preview=MetadataValue.md("```\n" + "\n".join(lines or ["(none)"]) + "\n```"),
        )
    )


ALERT_ASSETS = [
    zones,
    position_alerts,
    missing_far_alerts,
    missing_dep_alerts,
    beacon_malfunctions,
    pending_alerts,
]
