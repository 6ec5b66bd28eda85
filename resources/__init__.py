"""Resources, built once per environment and handed to the one `Definitions`.

Each external system has a small interface with a real implementation and a local one, chosen by
configuration (environment variables read when a run uses the resource, never at import time).
"""

from __future__ import annotations

from typing import Any

from resources.io_managers import PostgresPandasIOManager
from resources.warehouse import WarehouseResource


def build_resources() -> dict[str, Any]:
    """The resources every environment shares; settings resolve at run time from env."""
    warehouse = WarehouseResource()
    return {
        "warehouse": warehouse,
        "io_manager": PostgresPandasIOManager(warehouse=warehouse),
    }
