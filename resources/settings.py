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
        Setting("SOURCE_DB_URL", "vessel registry (oracle+oracledb://...); unset: stand-in", secret=True),
        Setting("SOURCE_DB_SCHEMA", "schema (Oracle owner) of the registry tables"),
        Setting("REFERENCE_SPECIES_CSV", "FAO ASFIS species CSV (default: bundled)"),
        Setting("REFERENCE_FISHING_GEAR_CODES_CSV", "ISSCFG gear codes CSV (default: bundled)"),
        Setting("REFERENCE_PORTS_CSV", "ports CSV (default: bundled)"),
        Setting("REFERENCE_DISTRICTS_CSV", "maritime districts CSV (default: bundled)"),
        Setting("REFERENCE_FLEET_SEGMENTS_DIR", "folder of <year>.yaml fleet segments"),
        # logbook
        Setting("LOGBOOK_INBOX_DIR", "logbook inbox folder (default <state>/inbox/logbook)"),
        # processing chain
        Setting("CATALOGUE_URL", "OData catalogue base URL; unset: the bundled fixture pages"),
        Setting("CATALOGUE_TOKEN", "bearer token of the OData catalogue", secret=True),
        Setting("NOMAD_ADDR", "Nomad HTTP address; unset: local subprocess launcher"),
        Setting("NOMAD_TOKEN", "Nomad ACL token", secret=True),
        Setting("NOMAD_NAMESPACE", "Nomad namespace of the processing jobs"),
        Setting("NOMAD_REGION", "Nomad region of the processing jobs"),
        Setting("FISHNET_PRODUCTS_DIR", "where processing tasks write their products"),
        Setting("FISHNET_MAX_VMS", "VMs the orchestrator may plan in total", default="20"),
        Setting(
            "FISHNET_PLANNING_HORIZON_HOURS", "every task must end within this horizon", "24"
        ),
        Setting(
            "FISHNET_SENSOR_WAIT_SECONDS",
            "how long a change-feed sensor tick waits on LISTEN for a change",
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
