"""The geocoder as a Dagster resource: the BAN reverse-geocoding API when GEOCODER_URL (or `url`)
is set, else the offline commune-polygon lookup (GEOCODER_COMMUNES_FILE, default: the bundled
sample). The clients themselves are in `resources/geocoder_client.py` (no Dagster).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.geocoder_client import (
    SAMPLE_COMMUNES_FILE,
    BanGeocoder,
    CommuneGeocoder,
    Geocoder,
    GeocoderError,
    Place,
    Point,
    ban_geocoder,
    commune_geocoder,
)
from resources.settings import setting

__all__ = [
    "BanGeocoder",
    "CommuneGeocoder",
    "Geocoder",
    "GeocoderError",
    "GeocoderResource",
    "Place",
    "Point",
]


class GeocoderResource(ConfigurableResource):
    """Which geocoder the POI transform uses: the BAN API when a URL is set, else commune polygons."""

    url: str | None = Field(
        default=None,
        description="BAN reverse-geocoding base URL (e.g. https://api-adresse.data.gouv.fr); "
        "empty means GEOCODER_URL, else the offline commune-polygon lookup.",
    )
    communes_file: str | None = Field(
        default=None,
        description="GeoJSON of commune polygons; empty means GEOCODER_COMMUNES_FILE, else the "
        "bundled sample.",
    )
    batch_size: int = Field(default=1000, ge=1, le=10_000, description="points per API request")
    max_retries: int = Field(default=3, ge=0, description="retries of a failed API request")
    backoff_seconds: float = Field(default=0.5, ge=0, description="first retry delay (doubles)")

    def kind(self) -> str:
        """'ban-api' or 'commune-polygons', for metadata and logs."""
        return "ban-api" if setting("GEOCODER_URL", self.url) else "commune-polygons"

    def communes_path(self) -> Path:
        """The polygon file the offline geocoder reads."""
        configured = setting("GEOCODER_COMMUNES_FILE", self.communes_file)
        return Path(configured) if configured else SAMPLE_COMMUNES_FILE

    def factory(self) -> Callable[[], Geocoder]:
        """A picklable function returning this run's geocoder (process-pool workers call it)."""
        url = setting("GEOCODER_URL", self.url)
        if url:
            return functools.partial(
                ban_geocoder, url, self.batch_size, self.max_retries, self.backoff_seconds
            )
        return functools.partial(commune_geocoder, self.communes_path().resolve())

    def client(self) -> Geocoder:
        """The geocoder for this run (settings resolved now, not at import)."""
        return self.factory()()
