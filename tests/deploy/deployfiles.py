"""Readers of the deployment files for the config tests (no Docker, Kubernetes or Nomad needed)."""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import hcl2
import yaml

from resources.settings import SETTINGS, Setting
from resources.warehouse import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
INSTANCE = DEPLOY / "dagster.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
NOMAD_JOBS = sorted((DEPLOY / "nomad").glob("*.nomad.hcl"))
DOCKERFILE = DEPLOY / "Dockerfile"


def run_settings() -> list[Setting]:
    """Settings read inside runs: a launcher must forward each of them."""
    return [s for s in SETTINGS.values() if s.run_worker]


def load_yaml(path: Path) -> Any:
    """A YAML file (anchors and merge keys resolved, as docker compose and helm do)."""
    return yaml.safe_load(path.read_text())


def env_names(environment: Any) -> set[str]:
    """Variable names of a compose `environment` (mapping or KEY=VALUE list)."""
    if isinstance(environment, dict):
        return set(environment)
    return {item.split("=", 1)[0] for item in environment or []}


def sync_settings() -> Any:
    """The deploy/sync_settings.py module (a script, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "fishnet_sync_settings", DEPLOY / "sync_settings.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- HCL (python-hcl2 keeps quotes, `${...}` wrappers and heredoc markers in its output) ---------

_HEREDOC = re.compile(r"^<<(-?)([A-Z]+)\n(.*)\n\s*\2$", re.S)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        heredoc = _HEREDOC.match(value)
        if heredoc:
            body = heredoc.group(3)
            return textwrap.dedent(body) + "\n" if heredoc.group(1) else body + "\n"
        return value.replace("\\n", "\n") if value.startswith("<<") else value
    return value


def load_hcl(path: Path) -> dict[str, Any]:
    """A Nomad job file as plain Python data (quotes stripped, heredocs dedented)."""
    with path.open() as handle:
        data = hcl2.load(handle)
    data.pop("__comments__", None)
    return _plain(data)


def blocks(items: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Labelled HCL blocks (`group "code" {...}` as [{"code": {...}}]) as one mapping."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        out.update(item)
    return out
