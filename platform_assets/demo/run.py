"""The main job (`fishnet demo`): the whole asset graph on bundled sample data, sensors ticked once.

Runs are recorded in the instance of DAGSTER_HOME (this project's dagster.yaml, PostgreSQL
storage), so they show in the UI afterwards (`fishnet dev`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import sqlalchemy as sa
from dagster import DagsterInstance

from migrations import upgrade
from platform_assets.demo.ticks import tick_sensors
from resources.warehouse import (
    DatabaseUrls,
    WarehouseResource,
    dagster_environment,
    resolve_database_urls,
)

DOMAIN_SCHEMAS = ("reference", "positions", "logbook", "pois", "processing", "ops")

# Each domain may seed its sample inputs (inbox files, a source schema) before the run.
DemoPreparer = Callable[[WarehouseResource], None]


def demo_preparers() -> list[DemoPreparer]:
    """The sample-data seeders of the domains that need one."""
    from platform_assets.demo.alerts import prepare_demo as alert_zones
    from platform_assets.demo.logbook import prepare_demo as logbook_samples
    from platform_assets.demo.pois import prepare_demo as poi_deliveries
    from platform_assets.demo.positions import prepare_demo as naf_samples
    from platform_assets.demo.processing import prepare_demo as processing_routines
    from platform_assets.demo.reference import prepare_demo as reference_source

    return [
        reference_source,
        naf_samples,
        logbook_samples,
        alert_zones,
        poi_deliveries,
        processing_routines,
    ]


DemoSummary = Callable[[WarehouseResource], list[str]]


def demo_summaries() -> list[DemoSummary]:
    """Lines each domain prints after the table counts."""
    from platform_assets.demo.alerts import summary as alerts_summary
    from platform_assets.demo.logbook import summary as logbook_summary
    from platform_assets.demo.pois import summary as pois_summary
    from platform_assets.demo.positions import summary as positions_summary
    from platform_assets.demo.processing import summary as processing_summary

    return [positions_summary, logbook_summary, alerts_summary, pois_summary, processing_summary]


def table_counts(warehouse: WarehouseResource) -> list[tuple[str, int]]:
    """Every table of the domain schemas with its row count."""
    query = sa.text(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema = ANY(:schemas) AND table_name <> 'alembic_version' AND table_type IN ('BASE TABLE', 'VIEW') "
        "ORDER BY table_schema, table_name"
    )
    with warehouse.engine.connect() as conn:
        tables = conn.execute(query, {"schemas": list(DOMAIN_SCHEMAS)}).all()
        return [
            (
                f"{schema}.{name}",
                conn.execute(sa.text(f'SELECT count(*) FROM "{schema}"."{name}"')).scalar_one(),
            )
            for schema, name in tables
        ]


def run_demo() -> int:
    """Migrate, seed samples, materialise everything, tick sensors, print a summary."""
    from platform_assets.definitions import all_assets_job, defs

    started = time.perf_counter()
    urls: DatabaseUrls = resolve_database_urls()
    os.environ.update(dagster_environment(urls))
    # Ticked once here, change-feed sensors must not wait for notifications that will not come.
    os.environ.setdefault("FISHNET_SENSOR_WAIT_SECONDS", "0")
    # The sample positions end yesterday: judge alerts as of the latest stored position.
    os.environ.setdefault("ALERTS_AS_OF", "latest")
    print(f"warehouse: {urls.url!r}")
    upgrade(urls)
    warehouse = WarehouseResource(database_url=urls.libpq)
    for prepare in demo_preparers():
        prepare(warehouse)

    instance = DagsterInstance.get()
    job = defs.resolve_job_def(all_assets_job.name)
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    print(f"{job.name}: {'succeeded' if result.success else 'FAILED'} (run {result.run_id})")
    sensor_outcomes = tick_sensors(defs, instance)
    # The processing chain needs several rounds (plan, launch, poll, harvest products, ...):
    # drive its sensors until it has nothing left to do, as the daemon would over a few minutes.
    from platform_assets.demo.processing import run_chain

    chain_runs = run_chain(defs, instance)
    # Alerts read positions and logbook reports, which the sensor-started runs just stored.
    alerts = defs.resolve_job_def("alerts_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    print(f"alerts_job (after the ingestions): {'succeeded' if alerts.success else 'FAILED'}")
    # The POI sources deliver again: one event changed, one gone; the refresh writes only that.
    from platform_assets.demo.pois import second_delivery

    second_delivery(warehouse)
    pois = defs.resolve_job_def("pois_refresh_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    print(f"pois_refresh_job (second delivery): {'succeeded' if pois.success else 'FAILED'}")

    print("\nsensors ticked once:")
    for name, requested, succeeded in sensor_outcomes:
        print(f"  {name:<40} {requested:>3} run(s) requested, {succeeded} succeeded")
    print(f"\nprocessing chain driven to completion: {len(chain_runs)} run(s)")
    for sensor_name, job_name, ok_run in chain_runs:
        print(f"  {sensor_name:<40} -> {job_name:<30} {'ok' if ok_run else 'FAILED'}")
    print("\ntables:")
    for table, count in table_counts(warehouse):
        print(f"  {table:<45} {count:>9,} rows")
    for summarise in demo_summaries():
        print()
        print("\n".join(summarise(warehouse)))
    print(
        f"\ndone in {time.perf_counter() - started:.1f} s; `fishnet dev` opens the UI on these runs"
    )
    ok = (
        result.success
        and alerts.success
        and pois.success
        and all(req == ok for _, req, ok in sensor_outcomes)
        and all(ok_run for _, _, ok_run in chain_runs)
    )
    return 0 if ok else 1
