"""Sample vessel registry for the demo: the `oracle_source` schema of the warehouse database."""

import logging

from resources.source_db import EMBEDDED_SCHEMA, seed_sample_source
from resources.warehouse import WarehouseResource

log = logging.getLogger(__name__)


def prepare_demo(warehouse: WarehouseResource) -> None:
    """(Re)seed `oracle_source` with the 300-vessel sample; running it again changes nothing."""
    vessels = seed_sample_source(warehouse.engine, EMBEDDED_SCHEMA)
    log.info("seeded %s with %d sample vessels", EMBEDDED_SCHEMA, vessels)
