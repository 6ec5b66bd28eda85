"""Ticking sensors by hand, the way the daemon would, and running what they request in process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import DagsterInstance, Definitions, build_sensor_context


def tick_and_run(
    defs: Definitions,
    instance: DagsterInstance,
    name: str,
    resources: Mapping[str, Any],
    cursor: str | None = None,
) -> tuple[str | None, list[tuple[str, bool]]]:
    """Evaluate one sensor tick and run, in process, what it requests.

    Returns the cursor the tick stored (None if it stored none) and (job, success) per run.
    """
    sensor = defs.resolve_sensor_def(name)
    with build_sensor_context(
        instance=instance, cursor=cursor, resources=resources, sensor_name=name, definitions=defs
    ) as context:
        data = sensor.evaluate_tick(context)
    runs = []
    for request in data.run_requests or []:
        job_name = request.job_name or sensor.job_name
        assert job_name, f"sensor {name} requested a run without a job"
        result = defs.resolve_job_def(job_name).execute_in_process(
            run_config=request.run_config,
            tags=request.tags,
            instance=instance,
            asset_selection=request.asset_selection,
            raise_on_error=False,
        )
        runs.append((job_name, result.success))
    return data.cursor, runs


def tick_sensors(defs: Definitions, instance: DagsterInstance) -> list[tuple[str, int, int]]:
    """Evaluate every sensor once and run what it requests; (sensor, requested, succeeded)."""
    resources = defs.get_repository_def().get_top_level_resources()
    outcomes = []
    for declared in defs.sensors or []:
        _, runs = tick_and_run(defs, instance, declared.name, resources)
        outcomes.append((declared.name, len(runs), sum(ok for _, ok in runs)))
    return outcomes
