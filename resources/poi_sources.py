"""Where each POI source is: the events API and the sports facilities file.

A field wins when set (run config or `EnvVar`), else the setting (POI_EVENTS_URL,
POI_FACILITIES_FILE), else None: the source then reads the demo's fixture delivery (bundled pages
and file, copied under the state directory so a "second delivery" can replace them). Another
source's location goes in `locations` (source name -> URL or path) without a new field here.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from resources.poi_fixtures import FILES, fixture_location
from resources.settings import setting

SOURCE_SETTINGS = {"events": "POI_EVENTS_URL", "facilities": "POI_FACILITIES_FILE"}


class PoiSourcesResource(ConfigurableResource):
    """Locations of the POI sources, and how the HTTP ones are read."""

    events_url: str | None = Field(
        default=None, description="events API base URL; empty means POI_EVENTS_URL, else fixtures"
    )
    facilities_file: str | None = Field(
        default=None,
        description="facilities CSV/GeoJSON; empty means POI_FACILITIES_FILE, else the fixture",
    )
    locations: dict[str, str] = Field(
        default_factory=dict, description="other sources: name -> URL or path"
    )
    page_size: int = Field(default=100, ge=1, le=1000, description="records per API page")
    max_retries: int = Field(default=3, ge=0, description="retries of a failed page request")
    backoff_seconds: float = Field(default=0.5, ge=0, description="first retry delay (doubles)")
    timeout_seconds: float = Field(default=30.0, gt=0, description="HTTP timeout per request")

    def location(self, source: str) -> str | None:
        """The configured location of a source, else its bundled fixture (None: neither)."""
        own = {"events": self.events_url, "facilities": self.facilities_file}.get(source)
        if own:
            return own
        if source in self.locations:
            return self.locations[source]
        name = SOURCE_SETTINGS.get(source)
        configured = setting(name) if name else None
        if configured:
            return configured
        if source in FILES:
            return str(fixture_location(source))
        return None
