"""Sample processing configuration for the demo and local runs: VM flavours and two chained routines.

Idempotent: running it again brings the rows back to these values.
"""

from __future__ import annotations

import sqlalchemy as sa

from resources.warehouse import WarehouseResource

FLAVOURS = [
    {"name": "m4", "cpu": 4.0, "ram_mb": 16_384, "storage_gb": 100.0},
    {"name": "m16", "cpu": 16.0, "ram_mb": 65_536, "storage_gb": 400.0},
]

# Listed downstream first: a routine's next_routine must exist before it.
ROUTINES = [
    {
        "name": "ndvi_to_composite",
        "cpu": 2.0,
        "ram_mb": 8_192,
        "storage_gb": 40.0,
        "expected_duration_s": 1_800,
        "docker_image": "ghcr.io/fishnet/ndvi-composite:1.0",
        "command": [],
        "input_product_type": "NDVI",
        "output_product_type": "NDVI_COMPOSITE",
        "next_routine": None,
        "max_attempts": 3,
    },
    {
        "name": "s2_l2a_to_ndvi",
        "cpu": 1.0,
        "ram_mb": 4_096,
        "storage_gb": 20.0,
        "expected_duration_s": 600,
        "docker_image": "ghcr.io/fishnet/s2-ndvi:1.0",
        "command": [],
        "input_product_type": "S2MSI2A",
        "output_product_type": "NDVI",
        "next_routine": "ndvi_to_composite",
        "max_attempts": 3,
    },
]

_UPSERT_FLAVOUR = sa.text(
    """
    INSERT INTO processing.vm_flavour (name, cpu, ram_mb, storage_gb)
    VALUES (:name, :cpu, :ram_mb, :storage_gb)
    ON CONFLICT (name) DO UPDATE
    SET cpu = EXCLUDED.cpu, ram_mb = EXCLUDED.ram_mb, storage_gb = EXCLUDED.storage_gb
    """
)

_UPSERT_ROUTINE = sa.text(
    """
    INSERT INTO processing.processing_routine
        (name, cpu, ram_mb, storage_gb, expected_duration_s, docker_image, command,
         input_product_type, output_product_type, next_routine, max_attempts)
    VALUES (:name, :cpu, :ram_mb, :storage_gb, :expected_duration_s, :docker_image, :command,
            :input_product_type, :output_product_type, :next_routine, :max_attempts)
    ON CONFLICT (name) DO UPDATE SET
        cpu = EXCLUDED.cpu, ram_mb = EXCLUDED.ram_mb, storage_gb = EXCLUDED.storage_gb,
        expected_duration_s = EXCLUDED.expected_duration_s, docker_image = EXCLUDED.docker_image,
        command = EXCLUDED.command, input_product_type = EXCLUDED.input_product_type,
        output_product_type = EXCLUDED.output_product_type,
        next_routine = EXCLUDED.next_routine, max_attempts = EXCLUDED.max_attempts
    """
)


def prepare_demo(warehouse: WarehouseResource) -> None:
    """Seed the VM flavours and the routines `s2_l2a_to_ndvi` -> `ndvi_to_composite`."""
    with warehouse.engine.begin() as conn:
        conn.execute(_UPSERT_FLAVOUR, FLAVOURS)
        for routine in ROUTINES:
            conn.execute(_UPSERT_ROUTINE, routine)
