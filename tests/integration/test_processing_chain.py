"""The whole processing chain through its sensors and jobs: fake Nomad, then local subprocesses.

harvest (fixture catalogue) -> new-inputs sensor -> orchestrator -> ready-tasks sensor ->
launcher (two runs racing) -> status job (fake Nomad states) -> products -> products sensor ->
harvest of products -> new-inputs sensor -> orchestrator attaches them to the planned successors
-> ready-tasks sensor -> launcher -> status job -> final products.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DagsterRunStatus, Definitions, RunRequest

from platform_assets.processing.assets import processing_input
from platform_assets.processing.jobs import (
    JOB_STATUS_SENSOR,
    NEW_INPUTS_SENSOR,
    NEW_PRODUCTS_SENSOR,
    PROCESSING_JOBS,
    READY_TASKS_SENSOR,
    STATUS_JOB,
)
from resources.catalogue import CatalogueResource
from resources.launcher import LauncherResource
from resources.publisher import DryRunResource
from resources.warehouse import WarehouseResource
from sensors.change_feed import WAIT_SECONDS_ENV
from sensors.processing import PROCESSING_SENSORS
from tests.fakes.nomad_server import FakeNomadServer, running_nomad_server
from tests.integration.processing_chain_helpers import (
    HEAD,
    SUCCESSOR,
    output_metadata,
    poll_until,
    race_launcher_runs,
    seed,
    sql,
    tasks,
    tick,
)

FIXTURE_INPUTS = 8  # S2MSI2A products of the bundled catalogue pages


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name in ("CATALOGUE_URL", "CATALOGUE_TOKEN", "FISHNET_PRODUCTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(WAIT_SECONDS_ENV, "0")


@pytest.fixture
def nomad() -> Iterator[FakeNomadServer]:
    with running_nomad_server() as server:
        yield server


class Chain:
    """The processing domain's definitions on the test database, driven by hand."""

    def __init__(
        self, warehouse: WarehouseResource, launcher: LauncherResource, instance: DagsterInstance
    ) -> None:
        self.warehouse = warehouse
        self.instance = instance
        self.defs = Definitions(
            assets=[processing_input],
            jobs=PROCESSING_JOBS,
            sensors=PROCESSING_SENSORS,
            resources={
                "warehouse": warehouse,
                "catalogue": CatalogueResource(),
                "launcher": launcher,
                "dry_run": DryRunResource(),
            },
        )
        self.resources = self.defs.get_repository_def().get_top_level_resources()
        self.cursors: dict[str, str | None] = {}

    def tick(self, sensor_name: str) -> list[RunRequest]:
        """Evaluate a sensor from its stored cursor, keep the new cursor."""
        sensor = self.defs.resolve_sensor_def(sensor_name)
        result = tick(sensor, self.instance, self.resources, self.cursors.get(sensor_name))
        self.cursors[sensor_name] = result.cursor
        return list(result.run_requests or [])

    def run(self, job_name: str, request: RunRequest | None = None) -> Any:
        """Execute a job in process, as the run a request starts."""
        job = self.defs.resolve_job_def(job_name)
        return job.execute_in_process(
            instance=self.instance,
            run_config=request.run_config if request else None,
            tags=dict(request.tags) if request else None,
        )

    def submitted(self, requests: list[RunRequest]) -> None:
        """Record runs for requests, as the daemon does when it submits them; they count as
        finished (what they would do is done by hand in the test)."""
        assert requests
        for request in requests:
            job = self.defs.resolve_job_def(request.job_name or "processing_launcher_job")
            self.instance.create_run_for_job(
                job_def=job,
                run_config=request.run_config,
                tags=dict(request.tags),
                status=DagsterRunStatus.SUCCESS,
            )

    def one_request(self, sensor_name: str) -> RunRequest:
        requests = self.tick(sensor_name)
        assert len(requests) == 1, [(r.run_key, dict(r.tags)) for r in requests]
        return requests[0]


def attempts(warehouse: WarehouseResource) -> list[tuple[int, int]]:
    return sql(warehouse, "SELECT task_id, attempt FROM processing.nomad_job_dispatch")


def processed(warehouse: WarehouseResource, routine: str) -> int:
    return sql(
        warehouse,
        "SELECT count(*) FROM processing.task_last_status s "
        "JOIN processing.processing_task t ON t.id = s.task_id "
        "WHERE s.status = 'processed' AND t.routine = %s",
        routine,
    )[0][0]


def poll_statuses_until(chain: Chain, routine: str, count: int) -> None:
    """Run the status job until `count` tasks of `routine` are processed."""

    def done() -> bool:
        result = chain.run(STATUS_JOB)
        assert result.success
        return processed(chain.warehouse, routine) == count

    poll_until(done, timeout=60, interval=0)


def test_end_to_end_with_fake_nomad(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, nomad: FakeNomadServer
) -> None:
    seed(warehouse)
    chain = Chain(
        warehouse,
        LauncherResource(nomad_address=nomad.address, products_dir="/data/products"),
        dagster_instance,
    )

    # harvest -> inputs -> the orchestrator plans each input and its successor
    assert chain.run("processing_harvest_job").success
    planned = chain.run("processing_orchestrator_job", chain.one_request(NEW_INPUTS_SENSOR))
    metadata = output_metadata(planned, "plan_processing_tasks")
    assert metadata["tasks_planned"] == metadata["new_tasks"] == 2 * FIXTURE_INPUTS
    assert metadata["unplaced"] == 0
    assert 1 <= metadata["vms_lower_bound"] <= metadata["vms_used"]
    assert chain.tick(NEW_INPUTS_SENSOR) == []  # nothing new since

    # new tasks wake the launcher; two launcher runs race (separate processes, as Dagster
    # launches runs), each head is dispatched once
    # the daemon would submit these runs (recorded, not executed here: the race below stands in
    # for them); without a run, a batch is emitted again after the grace period, as it should
    chain.submitted(chain.tick(READY_TASKS_SENSOR))
    counts = race_launcher_runs(warehouse, nomad.address, "/data/products")
    assert sum(counts) == FIXTURE_INPUTS
    heads = [t for t in tasks(warehouse) if t["routine"] == HEAD]
    assert sorted(attempts(warehouse)) == [(t["id"], 1) for t in heads]
    assert len({job["ID"] for job in nomad.registered_jobs}) == len(nomad.registered_jobs)

    # the status sensor starts status runs while jobs run; statuses, then products, appear
    (status_request,) = chain.tick(JOB_STATUS_SENSOR)
    assert status_request.job_name == STATUS_JOB
    poll_statuses_until(chain, HEAD, FIXTURE_INPUTS)
    products = sql(warehouse, "SELECT task_id, path, product_type FROM processing.product")
    assert sorted(p[0] for p in products) == [t["id"] for t in heads]
    assert {p[2] for p in products} == {"NDVI"}

    # processed heads wake the launcher for their successors
    successors = chain.run("processing_launcher_job", chain.one_request(READY_TASKS_SENSOR))
    assert output_metadata(successors, "launch_ready_tasks")["dispatched"] == FIXTURE_INPUTS
    by_id = {t["id"]: t for t in tasks(warehouse)}
    for task in by_id.values():
        if task["routine"] == SUCCESSOR:
            job = nomad.job_payload(f"task-{task['id']}-a1")
            assert job["Constraints"][0]["RTarget"] == by_id[task["preceding"]]["vm"]
            env = job["TaskGroups"][0]["Tasks"][0]["Env"]
            assert env["FISHNET_INPUT_PATH"] == f"/data/products/NDVI/task-{task['preceding']}"

    # products -> product harvest -> the next routine's inputs -> its (planned) tasks
    harvest = chain.one_request(NEW_PRODUCTS_SENSOR)
    harvested = chain.run("processing_harvest_job", harvest)
    (materialization,) = harvested.asset_materializations_for_node("processing__input")
    assert materialization.metadata["product_new"].value == FIXTURE_INPUTS
    replanned = chain.run("processing_orchestrator_job", chain.one_request(NEW_INPUTS_SENSOR))
    metadata = output_metadata(replanned, "plan_processing_tasks")
    assert metadata["adopted_inputs"] == FIXTURE_INPUTS and metadata["new_tasks"] == 0
    ndvi_inputs = dict(
        sql(
            warehouse,
            "SELECT source_product_id, id FROM processing.input WHERE product_type = 'NDVI'",
        )
    )
    product_of = dict(sql(warehouse, "SELECT task_id, id FROM processing.product"))
    for task in tasks(warehouse):
        if task["routine"] == SUCCESSOR:
            assert task["input_id"] == ndvi_inputs[product_of[task["preceding"]]]

    # the successors finish; their products are final (no routine takes NDVI_COMPOSITE)
    poll_statuses_until(chain, SUCCESSOR, FIXTURE_INPUTS)
    final = chain.run("processing_harvest_job", chain.one_request(NEW_PRODUCTS_SENSOR))
    (materialization,) = final.asset_materializations_for_node("processing__input")
    assert materialization.metadata["product_new"].value == 0
    assert chain.tick(NEW_INPUTS_SENSOR) == []

    # every task ran exactly once; nothing is left to do
    assert len(tasks(warehouse)) == 2 * FIXTURE_INPUTS
    dispatched = attempts(warehouse)
    assert len(dispatched) == len(set(dispatched)) == 2 * FIXTURE_INPUTS
    assert len(nomad.registered_jobs) == 2 * FIXTURE_INPUTS
    assert chain.tick(JOB_STATUS_SENSOR) == []
    assert chain.tick(READY_TASKS_SENSOR) == []


def test_status_sensor_restarts_the_launcher_for_tasks_left_ready(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, nomad: FakeNomadServer
) -> None:
    seed(warehouse)
    chain = Chain(warehouse, LauncherResource(nomad_address=nomad.address), dagster_instance)
    chain.run("processing_harvest_job")
    chain.run("processing_orchestrator_job")
    # a launcher run that never happened (Nomad was down, the run failed): tasks stay ready
    assert chain.tick(JOB_STATUS_SENSOR) == []  # first sight: it remembers them
    (request,) = chain.tick(JOB_STATUS_SENSOR)
    assert request.job_name == "processing_launcher_job"
    assert chain.run("processing_launcher_job", request).success
    (request,) = chain.tick(JOB_STATUS_SENSOR)  # now jobs run: the status job
    assert request.job_name == STATUS_JOB


def test_chain_runs_locally_with_subprocesses(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, tmp_path: Path
) -> None:
    from platform_assets.demo.processing import prepare_demo, run_chain, summary

    prepare_demo(warehouse)
    chain = Chain(warehouse, LauncherResource(local_state_dir=str(tmp_path)), dagster_instance)
    assert chain.run("processing_harvest_job").success

    runs = run_chain(chain.defs, dagster_instance, timeout_s=120, pause_s=0.05)
    assert all(ok for _, _, ok in runs), runs
    assert processed(warehouse, HEAD) == processed(warehouse, SUCCESSOR) == FIXTURE_INPUTS
    products = sql(
        warehouse, "SELECT task_id, path, product_type FROM processing.product ORDER BY id"
    )
    assert len(products) == 2 * FIXTURE_INPUTS
    for task_id, path, product_type in products:
        written = json.loads(Path(path).read_text())
        assert written["task_id"] == str(task_id)
        assert Path(path).parent == tmp_path / "products" / product_type
    # the composites read the NDVI products
    composite = next(p for p in products if p[2] == "NDVI_COMPOSITE")
    assert json.loads(Path(composite[1]).read_text())["input_path"].startswith(
        str(tmp_path / "products" / "NDVI")
    )
    assert (
        sql(warehouse, "SELECT count(*) FROM processing.input WHERE source = 'product'")[0][0]
        == FIXTURE_INPUTS
    )
    lines = summary(warehouse)
    assert any("NDVI_COMPOSITE 8" in line for line in lines), lines


def test_under_dry_run_the_op_jobs_plan_and_dispatch_nothing(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, nomad: FakeNomadServer
) -> None:
    seed(warehouse)
    chain = Chain(
        warehouse,
        LauncherResource(nomad_address=nomad.address, products_dir="/data/products"),
        dagster_instance,
    )
    assert chain.run("processing_harvest_job").success
    dry = RunRequest(tags={"fishnet/dry_run": "true"})
    planned = chain.run("processing_orchestrator_job", dry)
    metadata = output_metadata(planned, "plan_processing_tasks")
    assert metadata["dry_run"] is True
    assert metadata["would_plan_input_routine_pairs"] == FIXTURE_INPUTS
    assert sql(warehouse, "SELECT count(*) FROM processing.processing_task") == [(0,)]

    chain.run("processing_orchestrator_job")  # for real: tasks become ready
    ready = sql(warehouse, "SELECT count(*) FROM processing.ready_task")[0][0]
    assert ready > 0
    launched = chain.run("processing_launcher_job", dry)
    assert output_metadata(launched, "launch_ready_tasks")["would_dispatch_tasks"] == ready
    assert attempts(warehouse) == [] and nomad.registered_jobs == []
    assert output_metadata(chain.run(STATUS_JOB, dry), "track_processing_jobs")["dry_run"] is True
