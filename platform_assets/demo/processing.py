"""The processing chain on a laptop: seed routines, then drive the sensors until the chain is done.

Hooks for `fishnet demo` (platform_assets/demo/run.py): `prepare_demo` seeds the VM flavours and the
routines `s2_l2a_to_ndvi` -> `ndvi_to_composite` (sample.py); after the harvest (the
`processing/input` asset of the main job), `run_chain` ticks the processing sensors and runs what
they request, the way the daemon would but back to back, until nothing is left to do:

    inputs -> orchestrator (tasks on VMs) -> launcher (local subprocesses write products)
    -> status job (statuses, products) -> product harvest -> the next routine's tasks -> ...

`summary` prints where the chain stands. With NOMAD_ADDR set the same hooks drive a Nomad cluster.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import sqlalchemy as sa
from dagster import DagsterInstance, Definitions

from platform_assets.demo.ticks import tick_and_run
from platform_assets.processing.jobs import JOB_STATUS_SENSOR
from platform_assets.processing.launch import work_counts
from platform_assets.samples import processing as sample
from resources.warehouse import WarehouseResource
from sensors.change_feed import WAIT_SECONDS_ENV

CHAIN_SENSORS = (
    "processing_new_inputs_sensor",
    "processing_ready_tasks_sensor",
    JOB_STATUS_SENSOR,
    "processing_new_products_sensor",
)


def prepare_demo(warehouse: WarehouseResource) -> None:
    """Seed the flavours and the two chained routines (idempotent)."""
    sample.prepare_demo(warehouse)


def run_chain(
    defs: Definitions,
    instance: DagsterInstance,
    timeout_s: float = 300.0,
    pause_s: float = 0.2,
    sensors: Sequence[str] = CHAIN_SENSORS,
) -> list[tuple[str, str, bool]]:
    """Tick the chain's sensors and run their requests until a round requests nothing.

    Returns (sensor, job, succeeded) per run. Change-feed ticks do not wait for notifications
    here (FISHNET_SENSOR_WAIT_SECONDS is 0 for the duration). Raises TimeoutError after
    `timeout_s` with the chain still busy.
    """
    resources = defs.get_repository_def().get_top_level_resources()
    warehouse: WarehouseResource = (defs.resources or {})["warehouse"]
    cursors: dict[str, str | None] = {}
    runs: list[tuple[str, str, bool]] = []
    deadline = time.monotonic() + timeout_s
    saved = os.environ.get(WAIT_SECONDS_ENV)
    os.environ[WAIT_SECONDS_ENV] = "0"
    try:
        while True:
            requested = 0
            for name in sensors:
                cursor, ran = tick_and_run(defs, instance, name, resources, cursors.get(name))
                cursors[name] = cursor if cursor is not None else cursors.get(name)
                runs.extend((name, job_name, ok) for job_name, ok in ran)
                requested += len(ran)
            if requested == 0 and work_counts(warehouse.engine) == (0, 0):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError(f"processing chain still busy after {timeout_s:.0f} s")
            time.sleep(pause_s)  # local jobs run in the background meanwhile
    finally:
        if saved is None:
            os.environ.pop(WAIT_SECONDS_ENV, None)
        else:
            os.environ[WAIT_SECONDS_ENV] = saved


_SUMMARY = {
    "inputs": """
        SELECT source || ' ' || product_type, count(*) FROM processing.input GROUP BY 1 ORDER BY 1
    """,
    "tasks": """
        SELECT t.routine || ': ' || COALESCE(s.status, CASE WHEN t.virtual_machine_id IS NULL
                   THEN 'unplaced' ELSE 'planned' END), count(*)
        FROM processing.processing_task t
        LEFT JOIN processing.task_last_status s ON s.task_id = t.id
        GROUP BY 1 ORDER BY 1
    """,
    "VMs": """
        SELECT v.flavour || ' ' || v.state, count(*) FROM processing.virtual_machine v
        GROUP BY 1 ORDER BY 1
    """,
    "dispatches": """
        SELECT 'attempt ' || attempt, count(*) FROM processing.nomad_job_dispatch
        GROUP BY 1 ORDER BY 1
    """,
    "products": """
        SELECT product_type, count(*) FROM processing.product GROUP BY 1 ORDER BY 1
    """,
}


def summary(warehouse: WarehouseResource) -> list[str]:
    """Where the processing chain stands, a few lines."""
    lines = ["processing chain:"]
    with warehouse.engine.connect() as conn:
        for title, query in _SUMMARY.items():
            rows = conn.execute(sa.text(query)).all()
            text = ", ".join(f"{label} {count}" for label, count in rows) or "none"
            lines.append(f"  {title:<11} {text}")
    return lines
