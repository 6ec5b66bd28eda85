"""Every resource of the platform, built once per environment and handed to the one `Definitions`.

Each external system has a small interface with a real implementation and a local one, chosen by
configuration (settings are read when a run uses the resource, never at import time; see
settings.py). A resource hands rows or bytes to a domain; it never imports one.
"""

from __future__ import annotations

from typing import Any


def build_resources() -> dict[str, Any]:
    """The resources, by the names assets, ops and sensors ask for."""
    from resources.catalogue import CatalogueResource
    from resources.geocoder import GeocoderResource
    from resources.inboxes import LogbookInboxResource, NafInboxResource
    from resources.io_managers import PostgresPandasIOManager
    from resources.launcher import LauncherResource
    from resources.poi_sources import PoiSourcesResource
    from resources.publisher import DryRunResource, PublisherResource
    from resources.reference_files import ReferenceFilesResource
    from resources.source_db import SourceDatabaseResource
    from resources.warehouse import WarehouseResource

    warehouse = WarehouseResource()
    # Configured at launch and shared: run config for `dry_run` reaches the IO manager as well.
    dry_run = DryRunResource.configure_at_launch()
    return {
        "warehouse": warehouse,
        "io_manager": PostgresPandasIOManager(warehouse=warehouse, dry_run=dry_run),
        "source_db": SourceDatabaseResource(),
        "reference_files": ReferenceFilesResource(),
        "logbook_inbox": LogbookInboxResource(),
        "naf_inbox": NafInboxResource(),
        "catalogue": CatalogueResource(),
        "launcher": LauncherResource(),
        "geocoder": GeocoderResource(),
        "poi_sources": PoiSourcesResource(),
        "publisher": PublisherResource(),
        "dry_run": dry_run,
    }
