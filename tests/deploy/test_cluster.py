"""The cluster paths: Helm values use keys Dagster's official chart accepts, and the Nomad job
parses (HCL) with the services, volumes and settings the platform needs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.deployfiles import (
    HELM_VALUES,
    NOMAD_JOBS,
    blocks,
    load_hcl,
    load_yaml,
    run_settings,
)

# Keys of the official chart (helm/dagster/values.schema.json of the dagster 1.13 chart), for the
# sections these values set; sections marked additionalProperties=false there reject others.
CHART_TOP = {
    "global", "serviceAccount", "postgresql", "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret", "dagsterWebserver", "dagster-user-deployments", "runLauncher",
    "computeLogManager", "dagsterDaemon", "retention", "telemetry", "additionalInstanceConfig",
    "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets", "scheduler", "pythonLogs",
    "busybox", "migrate",
}  # fmt: skip
CHART_SECTIONS: dict[tuple[str, ...], set[str]] = {
    ("global",): {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName"},
    ("postgresql",): {
        "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
        "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service",
    },
    ("dagsterWebserver",): {
        "replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env",
        "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity",
        "tolerations", "podSecurityContext", "securityContext", "resources", "readinessProbe",
        "livenessProbe", "startupProbe", "annotations", "enableReadOnly", "dbStatementTimeout",
        "dbPoolRecycle", "logLevel", "schedulerName", "volumeMounts", "volumes",
        "initContainerResources",
    },
    ("dagster-user-deployments",): {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    ("runLauncher",): {"type", "config"},
    ("runLauncher", "config", "k8sRunLauncher"): {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
        "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
        "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
    },
    ("runLauncher", "config", "k8sRunLauncher", "runK8sConfig"): {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata",
    },
    ("computeLogManager",): {"type", "config"},
    ("dagsterDaemon",): {
        "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps",
        "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations",
        "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
        "startupProbe", "annotations", "runMonitoring", "runRetries", "sensors", "schedules",
        "schedulerName", "volumeMounts", "volumes", "initContainerResources",
    },
    ("dagsterDaemon", "runCoordinator"): {"enabled", "type", "config"},
    ("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator"): {
        "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers",
        "dequeueUseThreads", "blockOpConcurrencyLimitedRuns",
    },
    # keys the chart's instance template reads (templates/configmap-instance.yaml)
    ("dagsterDaemon", "runMonitoring"): {
        "enabled", "startTimeoutSeconds", "cancelTimeoutSeconds", "maxResumeRunAttempts",
        "pollIntervalSeconds", "freeSlotsAfterRunEndSeconds",
    },
    ("dagsterDaemon", "runRetries"): {"enabled", "maxRetries"},
    ("dagsterDaemon", "sensors"): {"useThreads", "numWorkers", "numSubmitWorkers"},
    ("retention",): {"enabled", "sensor", "schedule", "autoMaterialize"},
    ("telemetry",): {"enabled"},
}  # fmt: skip
USER_DEPLOYMENT_KEYS = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
    "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets", "annotations",
    "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext", "resources",
    "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes",
    "schedulerName", "initContainers", "sidecarContainers",
}  # fmt: skip


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return load_yaml(HELM_VALUES)


def _at(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        values = values[key]
    return values


def test_helm_values_use_keys_the_chart_accepts(values: dict[str, Any]) -> None:
    assert set(values) <= CHART_TOP, set(values) - CHART_TOP
    for path, allowed in CHART_SECTIONS.items():
        try:
            section = _at(values, path)
        except KeyError:
            continue
        unknown = set(section) - allowed
        assert not unknown, f"{'.'.join(path)}: the chart has no {sorted(unknown)}"
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= USER_DEPLOYMENT_KEYS, set(deployment) - USER_DEPLOYMENT_KEYS
        assert {"name", "image", "port"} <= set(deployment)


def test_helm_values_describe_the_cluster_deployment(values: dict[str, Any]) -> None:
    assert values["postgresql"]["enabled"] is False  # the warehouse's own server
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert values["runLauncher"]["type"] in {"K8sRunLauncher", "CeleryK8sRunLauncher"}
    daemon = values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    monitoring = daemon["runMonitoring"]
    assert monitoring["enabled"] and monitoring["maxResumeRunAttempts"] >= 1
    assert monitoring["startTimeoutSeconds"] and monitoring["cancelTimeoutSeconds"]
    retries = values["additionalInstanceConfig"]["run_retries"]
    assert retries["enabled"] and retries["retry_on_asset_or_op_failure"] is False
    assert not daemon["runRetries"]["enabled"], "run_retries would be set twice"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert "platform_assets.definitions" in deployment["codeServerArgs"]
    assert deployment["podSecurityContext"]["runAsUser"] != 0


@pytest.mark.parametrize("job_file", NOMAD_JOBS, ids=[p.name for p in NOMAD_JOBS])
def test_the_nomad_job_parses_and_wires_the_services(job_file: Any) -> None:
    spec = load_hcl(job_file)
    (job,) = blocks(spec["job"]).values()
    groups = blocks(job["group"])
    assert set(groups) == {"code", "daemon", "webserver"}
    assert groups["daemon"]["count"] == 1  # never two daemons on one instance
    tasks = {name: blocks(group["task"]) for name, group in groups.items()}
    # migrations first: a prestart task of the code group
    migrate = tasks["code"]["migrate"]
    assert migrate["lifecycle"][0]["hook"] == "prestart"
    assert migrate["config"][0]["args"] == ["migrate"]
    code = tasks["code"]["code-server"]
    assert "platform_assets.definitions" in code["config"][0]["args"]
    # every run setting reaches the code server (runs are its subprocesses)
    env = set(code["env"][0])
    secret_keys = {s.name for s in run_settings() if s.secret}
    missing = {s.name for s in run_settings() if not s.secret} - env
    assert not missing, f"code-server env misses {sorted(missing)}"
    assert secret_keys & env == set(), "secrets belong in the Nomad variable, not the job file"
    locals_ = {k: v for block in spec["locals"] for k, v in block.items()}

    def data(template: dict[str, Any]) -> str:  # `data = local.x` parses as "${local.x}"
        ref = template["data"]
        return locals_[ref[len("${local.") : -1]] if ref.startswith("${local.") else ref

    assert any('nomadVar "nomad/jobs/fishnet"' in data(t) for t in code["template"])
    assert any(t["destination"].endswith("dagster_home/dagster.yaml") for t in code["template"])
    put_command = job_file.read_text().split("nomad var put", 1)[1].split("END settings")[0]
    for key in secret_keys | {"DAGSTER_PG_URL"}:
        assert f"{key}=" in put_command, f"the documented nomad var put misses {key}"
    # the webserver and the daemon find the code server in the service catalogue
    services = {s["name"]: s for g in groups.values() for s in g.get("service", [])}
    assert {"fishnet-code", "fishnet-webserver"} <= set(services)
    assert 'nomadService "fishnet-code"' in locals_["workspace_yaml"]
    # one shared volume for inboxes and compute logs
    for name, group in groups.items():
        (volume,) = blocks(group["volume"]).values()
        assert volume["access_mode"] == "multi-node-multi-writer", name
