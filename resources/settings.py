"""Every setting the platform reads from the environment, declared once and resolved when used.

A resource field wins when it is set (in run config, or as `EnvVar(...)` in a deployment); else
the environment variable; else the default below. Nothing is read at import time. Deployment
files (compose, `.env.example`, the Helm values, `deploy/dagster.yaml`'s forwarded list) are
checked against `SETTINGS` by the tests, so a variable the code reads cannot go missing there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    """One environment variable the code reads."""

    name: str
    description: str
    default: str | None = None
    secret: bool = False
    run_worker: bool = True
    """Read inside runs (so a run launcher must forward it), not only by the CLI or the instance."""


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        # the warehouse and Dagster's own storage
        Setting(
            "DATABASE_URL",
            "warehouse PostgreSQL URL; unset: an embedded server under FISHNET_STATE_DIR",
            secret=True,
        ),
        Setting(
            "DAGSTER_PG_URL",
            "Dagster run/event storage (postgresql+psycopg2://...); `fishnet env` derives it "
            "from DATABASE_URL",
            secret=True,
            run_worker=False,
        ),
        Setting("DAGSTER_HOME", "folder of the instance's dagster.yaml", run_worker=False),
        Setting(
            "FISHNET_STATE_DIR",
            "local state: embedded PostgreSQL data, inboxes, launcher state (default ./.state)",
        ),
        # reference
        Setting(
            "SOURCE_DB_URL", "vessel registry (oracle+oracledb://...); unset: stand-in", secret=True
        ),
        Setting("SOURCE_DB_SCHEMA", "schema (Oracle owner) of the registry tables"),
        Setting("REFERENCE_SPECIES_CSV", "FAO ASFIS species CSV (default: bundled)"),
        Setting("REFERENCE_FISHING_GEAR_CODES_CSV", "ISSCFG gear codes CSV (default: bundled)"),
        Setting("REFERENCE_PORTS_CSV", "ports CSV (default: bundled)"),
        Setting("REFERENCE_DISTRICTS_CSV", "maritime districts CSV (default: bundled)"),
        Setting("REFERENCE_FLEET_SEGMENTS_DIR", "folder of <year>.yaml fleet segments"),
        # logbook
        Setting("LOGBOOK_INBOX_DIR", "logbook inbox folder (default <state>/inbox/logbook)"),
        # positions
        Setting("NAF_INBOX_DIR", "NAF position files inbox folder (default <state>/inbox/naf)"),
        Setting(
            "POSITIONS_RETENTION_DAYS",
            "days of positions kept; older daily partitions are dropped by maintenance",
            default="400",
        ),
        # points of interest
        Setting("POI_EVENTS_URL", "events API base URL; unset: the bundled fixture pages"),
        Setting("POI_FACILITIES_FILE", "sports facilities CSV/GeoJSON; unset: the bundled file"),
        Setting("GEOCODER_URL", "BAN reverse-geocoding API base URL; unset: commune polygons"),
        Setting("GEOCODER_COMMUNES_FILE", "commune polygons GeoJSON (default: bundled sample)"),
        Setting(
            "POI_MAX_FAILURE_SHARE",
            "share of a source's records that may fail a transform before the check fails",
            default="0.1",
        ),
        # processing chain
        Setting("CATALOGUE_URL", "OData catalogue base URL; unset: the bundled fixture pages"),
        Setting("CATALOGUE_TOKEN", "bearer token of the OData catalogue", secret=True),
        Setting("NOMAD_ADDR", "Nomad HTTP address; unset: local subprocess launcher"),
        Setting("NOMAD_TOKEN", "Nomad ACL token", secret=True),
        Setting("NOMAD_NAMESPACE", "Nomad namespace of the processing jobs"),
        Setting("NOMAD_REGION", "Nomad region of the processing jobs"),
        Setting("FISHNET_PRODUCTS_DIR", "where processing tasks write their products"),
        Setting("FISHNET_MAX_VMS", "VMs the orchestrator may plan in total", default="20"),
        Setting("FISHNET_PLANNING_HORIZON_HOURS", "every task must end within this horizon", "24"),
        Setting(
            "FISHNET_SENSOR_WAIT_SECONDS",
            "how long a change-feed sensor tick waits on LISTEN for a change",
        ),
        # operations: publishing and dry run
        Setting("PUBLISH_URL", "JSON batch (upsert) endpoint of publish_job; unset: CSV only"),
        Setting("PUBLISH_TOKEN", "bearer token of the publication endpoint", secret=True),
        Setting("PUBLISH_DIR", "folder of published CSV files (default <state>/publish)"),
        Setting("FISHNET_DRY_RUN", "true: runs read and transform but write nothing", "false"),
        # alerts
        Setting(
            "ALERTS_MISSING_FAR_MIN_FISHING_POSITIONS",
            "fishing positions in a day that need a FAR",
            "2",
        ),
        Setting(
            "ALERTS_MISSING_FAR_GRACE_HOURS", "hours after a day ends before its FAR is due", "6"
        ),
        Setting("ALERTS_MISSING_FAR_LOOKBACK_DAYS", "past days judged for missing FARs", "2"),
        Setting(
            "ALERTS_MISSING_DEP_TOLERANCE_HOURS", "DEP must be dated within this of departure", "4"
        ),
        Setting("ALERTS_MISSING_DEP_LOOKBACK_HOURS", "departures judged for a missing DEP", "48"),
        Setting(
            "ALERTS_MISSING_DEP_MIN_SEA_POSITIONS", "positions at sea that make a departure", "2"
        ),
        Setting(
            "ALERTS_BEACON_AT_SEA_MULTIPLE",
            "silent beacon at sea: silence > N emission periods",
            "6",
        ),
        Setting(
            "ALERTS_BEACON_AT_PORT_MULTIPLE", "silent beacon at port: silence > N periods", "24"
        ),
        Setting("ALERTS_BEACON_DEFAULT_PERIOD_MINUTES", "emission period when unknown", "60"),
        Setting("ALERTS_ZONES_DIR", "folder of zone GeoJSON files (default: bundled samples)"),
        Setting(
            "ALERTS_AS_OF",
            "instant alerts are computed at: ISO datetime, or 'latest[+hours]' (latest stored "
            "position, for replayed sample data); unset: now",
        ),
    )
}


def setting(name: str, override: str | None = None) -> str | None:
    """`override` when set, else the environment variable `name`, else its default."""
    if name not in SETTINGS:
        raise KeyError(f"{name} is not a declared setting (resources/settings.py)")
    if override not in (None, ""):
        return override
    value = os.environ.get(name)
    if value not in (None, ""):
        return value
    return SETTINGS[name].default


def setting_path(name: str, override: str | None, default: Path) -> Path:
    """A path setting, with a default computed when used (e.g. under the state directory)."""
    value = setting(name, override)
    return Path(value) if value else default


def setting_number(name: str, override: float | None = None) -> float | None:
    """A numeric setting; a value that is not a number raises naming the variable."""
    if override is not None:
        return override
    raw = setting(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
