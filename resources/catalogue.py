"""The product catalogue as a Dagster resource: the OData catalogue, or its file stand-in.

With `url` (or the CATALOGUE_URL environment variable, read when a run opens the catalogue, never
at import) the harvester talks to an OData catalogue such as Copernicus Data Space; otherwise it
reads the bundled fixture pages. Both fields accept `EnvVar(...)` for deployments that prefer
Dagster-managed settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from dagster import ConfigurableResource
from pydantic import Field

from resources.catalogue_client import (
    FIXTURE_CATALOGUE_DIR,
    Catalogue,
    CatalogueQuery,
    FileCatalogueClient,
    ODataCatalogueClient,
)
from resources.settings import setting


class CatalogueResource(ConfigurableResource):
    """Which catalogue to harvest and what to ask it for."""

    url: str | None = Field(
        default=None,
        description="OData catalogue base URL; empty means CATALOGUE_URL, else the fixture files.",
    )
    token: str | None = Field(
        default=None, description="Bearer token; empty means CATALOGUE_TOKEN (if set)."
    )
    fixtures_dir: str | None = Field(
        default=None, description="Directory of OData pages for the file catalogue."
    )
    collection: str = Field(default="SENTINEL-2", description="Catalogue collection name.")
    name_contains: list[str] = Field(
        default_factory=lambda: ["L2A"], description="Substrings every product name contains."
    )
    page_size: int = Field(default=100, ge=1, le=1000, description="OData $top per page.")
    initial_published_after: str | None = Field(
        default=None,
        description="Where the first harvest of a source starts: an ISO publication date "
        "(UTC when it has no offset).",
    )
    initial_lookback_hours: int = Field(
        default=24,
        ge=0,
        description="Without initial_published_after, how far back a first OData harvest goes "
        "(the file catalogue is read whole).",
    )
    overlap_seconds: int = Field(
        default=0,
        ge=0,
        description="Re-query this far before the stored window end, for catalogues that publish "
        "items late; re-harvested items are counted as already known.",
    )

    def resolved_url(self) -> str | None:
        """The OData URL in use, or None for the file catalogue."""
        return setting("CATALOGUE_URL", self.url)

    @property
    def kind(self) -> str:
        """`odata` or `file`, for run metadata."""
        return "odata" if self.resolved_url() else "file"

    @contextmanager
    def open(self) -> Iterator[Catalogue]:
        """A catalogue client for the duration of the block."""
        url = self.resolved_url()
        if url is None:
            yield FileCatalogueClient(self.fixtures_dir or FIXTURE_CATALOGUE_DIR)
            return
        token = setting("CATALOGUE_TOKEN", self.token)
        with ODataCatalogueClient(url, token=token) as client:
            yield client

    def first_window(self, now: datetime) -> datetime | None:
        """Where a source with no stored window starts."""
        if self.initial_published_after:
            start = datetime.fromisoformat(self.initial_published_after)
            return start if start.tzinfo else start.replace(tzinfo=UTC)
        if self.resolved_url() is None:
            return None
        return now - timedelta(hours=self.initial_lookback_hours)

    def query(self, published_after: datetime | None) -> CatalogueQuery:
        """The query of one harvest, from the stored window end (minus the overlap)."""
        if published_after is not None and self.overlap_seconds:
            published_after -= timedelta(seconds=self.overlap_seconds)
        return CatalogueQuery(
            collection=self.collection,
            name_contains=list(self.name_contains),
            published_after=published_after,
            top=self.page_size,
        )
