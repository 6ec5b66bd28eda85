"""deploy/docker-compose.yml is wired so that `docker compose up` works as shipped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.deployfiles import COMPOSE, INSTANCE, load_yaml

LONG_RUNNING = ("postgres", "code", "webserver", "daemon")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> volume name (or host path) of a service."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out[target] = source
    return out


def test_start_order_waits_for_health_and_migrations(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert _depends(services["migrate"]) == {"postgres": "service_healthy"}
    for name in ("code", "webserver", "daemon"):
        depends = _depends(services[name])
        assert depends.get("migrate") == "service_completed_successfully", name
    assert _depends(services["code"])["postgres"] == "service_healthy"
    for name in ("webserver", "daemon"):
        assert _depends(services[name])["code"] == "service_healthy", name
    for name in LONG_RUNNING:  # a condition on X means X needs a healthcheck
        assert services[name]["healthcheck"]["test"], name


def test_restart_policies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in LONG_RUNNING:
        assert services[name]["restart"] in {"unless-stopped", "always"}, name
    assert services["migrate"]["restart"] == "no"  # one-shot: its exit code gates the others


def test_one_service_builds_the_image_the_others_reuse(compose: dict[str, Any]) -> None:
    services = compose["services"]
    builders = [name for name, s in services.items() if "build" in s]
    assert builders == ["code"]
    image = services["code"]["image"]
    assert services["code"]["pull_policy"]  # build by default, or pull a registry image
    for name, service in services.items():
        if service.get("image") == image and name != "code":
            assert service["pull_policy"] == "never", f"{name} would pull {image} from a registry"
    assert services["code"]["environment"]["DAGSTER_CURRENT_IMAGE"] == image


def test_ports_and_network_match_the_instance(compose: dict[str, Any]) -> None:
    services = compose["services"]
    launcher = load_yaml(INSTANCE)["run_launcher"]["config"]
    assert compose["networks"]["fishnet"]["name"] == launcher["network"]
    for name in ("postgres", "migrate", "code", "webserver", "daemon"):
        assert services[name]["networks"] == ["fishnet"], name
    # only the UI is published, on the loopback interface (it has no login)
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["webserver"]
    (port,) = published["webserver"]
    assert port.startswith("127.0.0.1:") and port.endswith(":3000")
    assert "-p" in services["webserver"]["command"] and "3000" in services["webserver"]["command"]
    workspace = load_yaml(INSTANCE.parent / "workspace.yaml")["load_from"][0]["grpc_server"]
    assert workspace["host"] == "code" and str(workspace["port"]) in services["code"]["command"]


def test_volumes_are_shared_where_sensors_runs_and_the_ui_meet(compose: dict[str, Any]) -> None:
    services = compose["services"]
    named = {key: spec["name"] for key, spec in compose["volumes"].items()}
    run_mounts = {
        v.split(":")[1]: v.split(":")[0]
        for v in load_yaml(INSTANCE)["run_launcher"]["config"]["container_kwargs"]["volumes"]
    }
    env = services["code"]["environment"]
    state = env["FISHNET_STATE_DIR"]
    # sensors (code server) and runs see the same inboxes and state
    assert named[_mounts(services["code"])[state]] == run_mounts[state]
    for inbox in ("LOGBOOK_INBOX_DIR", "NAF_INBOX_DIR"):
        if inbox in env:
            default = env[inbox].split(":-", 1)[-1].rstrip("}")
            assert default.startswith(state + "/"), f"{inbox} defaults outside the shared volume"
    # runs write compute logs, the webserver reads them
    storage = "/opt/dagster/storage"
    assert named[_mounts(services["webserver"])[storage]] == run_mounts[storage]
    assert load_yaml(INSTANCE)["compute_logs"]["config"]["base_dir"].startswith(storage)
    # the database survives `docker compose down`
    assert _mounts(services["postgres"])["/var/lib/postgresql/data"] in compose["volumes"]
    # launching and stopping run containers needs the Docker socket, and its group
    for name in ("webserver", "daemon"):
        assert _mounts(services[name])["/var/run/docker.sock"] == "/var/run/docker.sock"
        assert services[name]["group_add"], name


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    assert "${POSTGRES_PASSWORD" in text
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or "TOKEN" in key:
                assert str(value).startswith("${"), key
