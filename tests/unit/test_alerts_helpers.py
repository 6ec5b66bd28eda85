"""Hand-made positions and zones for the alerts tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import shapely

from platform_assets.alerts.zones import Zone, ZoneIndex

NOW = datetime(2024, 5, 8, 12, 0, tzinfo=UTC)

CLOSED_ZONE = Zone("Closed box 47.5N 4.5W", "regulatory", shapely.box(-4.7, 47.3, -4.3, 47.7))
EEZ_FR = Zone("EEZ FRA", "eez", shapely.box(-8.0, 43.0, 3.0, 51.5))
EEZ_GB = Zone("EEZ GBR", "eez", shapely.box(-8.0, 51.5, 3.0, 58.0))
DEEP = Zone("Deeper than 800 m", "bathymetry", shapely.box(-8.0, 43.0, -6.0, 51.5), depth_m=800)


def zone_index(*extra: Zone) -> ZoneIndex:
    """The standard zones plus extras."""
    return ZoneIndex([CLOSED_ZONE, EEZ_FR, EEZ_GB, DEEP, *extra])


def track(
    cfr: str | None,
    points: list[tuple[float, float]],
    start: datetime,
    *,
    step_minutes: float = 30,
    first_id: int = 1,
    fishing: bool | None = True,
    at_port: bool = False,
    flag: str = "FR",
    ircs: str | None = None,
    external: str | None = None,
    name: str = "VESSEL",
) -> pd.DataFrame:
    """One vessel's positions (lat, lon) every `step_minutes` from `start`."""
    rows: list[dict[str, Any]] = []
    for i, (lat, lon) in enumerate(points):
        rows.append(
            {
                "id": first_id + i,
                "internal_reference_number": cfr,
                "external_reference_number": external,
                "ircs": ircs,
                "vessel_name": name,
                "flag_state": flag,
                "latitude": lat,
                "longitude": lon,
                "datetime_utc": pd.Timestamp(start + timedelta(minutes=step_minutes * i)),
                "is_fishing": fishing,
                "is_at_port": at_port,
            }
        )
    return pd.DataFrame(rows)


def positions(*tracks: pd.DataFrame) -> pd.DataFrame:
    """Tracks concatenated with the column dtypes the store produces."""
    frame = pd.concat(tracks, ignore_index=True)
    frame["datetime_utc"] = pd.to_datetime(frame["datetime_utc"], utc=True)
    frame["is_fishing"] = frame["is_fishing"].astype("boolean")
    frame["is_at_port"] = frame["is_at_port"].astype("boolean")
    return frame


def no_context() -> pd.DataFrame:
    """An empty vessel context (no register, no logbook)."""
    return pd.DataFrame(columns=["vessel_id", "district_code", "gears", "species"])
