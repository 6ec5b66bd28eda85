"""What an operator writes to define a position alert: the pydantic model of a specification.

A vessel is in alert when one of its positions in the analysis window passes every filter the
specification sets; an empty filter lets everything through. Stored one per row of
`alerts.position_alert_specifications` (the filters as JSON columns), validated here on read so a
bad row is reported by name instead of silently matching nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class GearFilter(BaseModel):
    """A gear code (FAO ISSCFG, e.g. OTB) with an optional mesh range in millimetres (inclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gear: str = Field(min_length=1)
    min_mesh: float | None = Field(default=None, ge=0)
    max_mesh: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _range(self) -> GearFilter:
        low, high = self.min_mesh, self.max_mesh
        if low is not None and high is not None and low > high:
            raise ValueError(f"gear {self.gear}: min_mesh {self.min_mesh} > max_mesh")
        return self

    def matches(self, gear: str | None, mesh: float | None) -> bool:
        """True when the gear is this one and its mesh is in range (an unknown mesh is not)."""
        if gear != self.gear:
            return False
        if self.min_mesh is None and self.max_mesh is None:
            return True
        if mesh is None:
            return False
        if self.min_mesh is not None and mesh < self.min_mesh:
            return False
        return self.max_mesh is None or mesh <= self.max_mesh


class ValidityPeriod(BaseModel):
    """A half-open interval [start, end) in UTC."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> ValidityPeriod:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("validity period datetimes must carry a time zone (UTC)")
        if self.end <= self.start:
            raise ValueError(f"validity period ends ({self.end}) before it starts ({self.start})")
        return self


class Schedule(BaseModel):
    """When positions count: inside one of the periods (every year when `repeat_each_year`) and
    on one of the weekdays (0 = Monday). Empty lists mean always."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    periods: list[ValidityPeriod] = Field(default_factory=list)
    repeat_each_year: bool = False
    weekdays: list[int] = Field(default_factory=list)

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        bad = [day for day in value if not 0 <= day <= 6]
        if bad:
            raise ValueError(f"weekdays must be 0 (Monday) to 6, got {bad}")
        return sorted(set(value))

    @property
    def is_always(self) -> bool:
        """No restriction at all."""
        return not self.periods and not self.weekdays


class PositionAlertSpecification(BaseModel):
    """One row of `alerts.position_alert_specifications`."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    name: str = Field(min_length=1)
    description: str = ""
    offence_code: str | None = Field(default=None, description="NATINF-like offence code")
    threat: str | None = None
    threat_characterization: str | None = None
    track_analysis_depth_hours: float = Field(default=24.0, gt=0, le=24 * 31)
    only_fishing_positions: bool = True
    gears: list[GearFilter] = Field(default_factory=list)
    species: list[str] = Field(default_factory=list, description="species on board (any of)")
    flag_states: list[str] = Field(default_factory=list)
    vessel_ids: list[int] = Field(default_factory=list, description="reference.vessels ids")
    district_codes: list[str] = Field(default_factory=list)
    zones: list[str] = Field(
        default_factory=list,
        description="zone names; inside one zone of each layer named (AND across layers)",
    )
    min_depth_m: float | None = Field(default=None, ge=0)
    is_active: bool = True
    schedule: Schedule = Field(default_factory=Schedule)

    @field_validator("species", "flag_states", "district_codes", "zones")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value]
        if any(not v for v in cleaned):
            raise ValueError("empty code in list")
        return list(dict.fromkeys(cleaned))

    @property
    def uses_vessel_context(self) -> bool:
        """Filters that need the vessel register or the logbook, not only positions."""
        return bool(self.gears or self.species or self.vessel_ids or self.district_codes)

    @property
    def uses_geometry(self) -> bool:
        """Filters that need point-in-polygon."""
        return bool(self.zones) or self.min_depth_m is not None


class SpecificationError(ValueError):
    """A stored specification row that does not validate."""


def parse_specification(row: dict[str, Any]) -> PositionAlertSpecification:
    """A stored row as a specification; the error names the row (id and name)."""
    try:
        return PositionAlertSpecification.model_validate(row)
    except ValueError as exc:
        raise SpecificationError(
            f"position alert specification id={row.get('id')} name={row.get('name')!r}: {exc}"
        ) from exc
