"""Sports facilities: a CSV or GeoJSON file (stadiums, pools, climbing walls...).

The second source proves a new source is this module plus one line in `sources/__init__.py`.
CSV columns: facility_id, name, facility_type, lat, lon, address, postcode, commune, insee,
website. GeoJSON: a FeatureCollection of Points whose properties carry the same names.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from platform_assets.pois.models import Activity, Address, AddressPoi, Poi, RegisteredPoi
from platform_assets.pois.sources.base import (
    ExtractOptions,
    RawRecord,
    Source,
    SourceError,
    SourceRecordError,
)

NAME = "facilities"


class Facility(BaseModel):
    """One facility row."""

    facility_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    facility_type: str = Field(min_length=1)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str | None = None
    postcode: str | None = None
    commune: str | None = None
    insee: str | None = None
    website: str | None = None

    @field_validator("address", "postcode", "commune", "insee", "website", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


def original_id(record: Mapping[str, Any]) -> str | None:
    """The facility id, even in a record that does not validate."""
    value = record.get("facility_id")
    return str(value) if value not in (None, "") else None


def transform(record: Mapping[str, Any]) -> RegisteredPoi:
    """A facility row -> the common model (a `SourceRecordError` names the row)."""
    try:
        facility = Facility.model_validate(record)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise SourceRecordError(f"facilities record {original_id(record)!r}: {problems}") from None
    return RegisteredPoi(
        source=NAME,
        original_id=facility.facility_id,
        poi=Poi(
            kind="facility",
            name=facility.name,
            url=facility.website,
            addresses=[
                AddressPoi(
                    role="venue",
                    address=Address(
                        latitude=facility.lat,
                        longitude=facility.lon,
                        street=facility.address,
                        postcode=facility.postcode,
                        city=facility.commune,
                        insee_code=facility.insee,
                    ),
                )
            ],
            activities=[Activity(sport=facility.facility_type)],
        ),
    )


def _read_geojson(path: Path) -> Iterator[RawRecord]:
    collection = json.loads(path.read_text(encoding="utf-8"))
    for number, feature in enumerate(collection.get("features", [])):
        record = dict(feature.get("properties") or {})
        geometry = feature.get("geometry") or {}
        if geometry.get("type") == "Point":
            record["lon"], record["lat"] = geometry["coordinates"][:2]
        record.setdefault("_feature", number)
        yield record


def extract(location: str | None, options: ExtractOptions) -> Iterator[RawRecord]:
    """Every row of the file (a GeoJSON by its suffix, else CSV)."""
    if location is None:
        raise SourceError(f"{NAME}: no location (PoiSourcesResource gives the bundled fixture)")
    path = Path(location.removeprefix("file://"))
    try:
        if path.suffix.lower() in (".geojson", ".json"):
            yield from _read_geojson(path)
            return
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                yield dict(row)
    except (OSError, ValueError, KeyError) as exc:
        raise SourceError(f"facilities file {path}: {exc}") from exc


SOURCE = Source(
    name=NAME,
    kind="file",
    description="Sports facilities (stadiums, pools, climbing walls) from a CSV or GeoJSON file.",
    extract=extract,
    transform=transform,
    original_id=original_id,
)
