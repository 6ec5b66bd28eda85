"""Sample logbook traffic for the demo: one archive in the inbox."""

from pathlib import Path

from platform_assets.logbook.assets import LogbookInboxResource
from platform_assets.logbook.samples import write_sample_archive
from resources.warehouse import WarehouseResource

DEMO_ARCHIVE = "hub_sample_20260302.zip"


def prepare_demo(warehouse: WarehouseResource) -> Path:
    """Drop the sample archive (40 messages of whole trips + 1 malformed) into the inbox."""
    inbox = LogbookInboxResource().path()
    target = inbox / DEMO_ARCHIVE
    if not target.exists():
        write_sample_archive(target)
    return target
