"""The shape of the project holds: one face per domain, no private Dagster names, small modules.

import-linter (pyproject, run by .ci/run and `make lint`) holds the import direction; these tests
hold what it cannot see.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = sorted(
    p.parent.name
    for p in (ROOT / "platform_assets").glob("*/definitions.py")
    if p.parent.name not in {"ops"}
)
MAX_LINES = 650  # "~600": a module a reader takes in one sitting
SCANNED = ("platform_assets", "resources", "sensors", "tests", "benchmarks", "migrations")


def python_files(*roots: str) -> list[Path]:
    return sorted(f for r in roots for f in (ROOT / r).rglob("*.py") if ".venv" not in f.parts)


def test_the_known_domains_are_there() -> None:
    assert {"reference", "logbook", "processing"} <= set(DOMAINS)


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_domain_has_the_same_face(domain: str) -> None:
    package = ROOT / "platform_assets" / domain
    for name in ("assets.py", "checks.py", "jobs.py", "definitions.py"):
        assert (package / name).is_file(), f"platform_assets/{domain}/{name} is missing"
    # the package itself imports nothing: importing a pure module never loads the Dagster layer
    tree = ast.parse((package / "__init__.py").read_text())
    assert not [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)], domain
    # sensors and resources live in sensors/ and resources/, never in a domain
    for module in package.rglob("*.py"):
        text = module.read_text()
        assert "@sensor(" not in text, f"{module.relative_to(ROOT)} defines a sensor"
        assert "(ConfigurableResource)" not in text, f"{module.relative_to(ROOT)}: a resource"


#: The one allowed private import: the run launcher API returns these types, which `dagster` 1.13
#: does not export (resources/run_launcher.py, issue #20). Nothing else from `dagster._`.
PRIVATE_ALLOWED = {
    "resources/run_launcher.py": [
        "from dagster._core.launcher import CheckRunHealthResult, WorkerStatus"
    ]
}


def test_no_private_dagster_name_is_imported() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+dagster(_\w+)?\._.*$", re.MULTILINE)
    offenders = {
        name: found
        for f in python_files(*SCANNED)
        if (found := [m.group(0).strip() for m in pattern.finditer(f.read_text())])
        and found != PRIVATE_ALLOWED.get(name := str(f.relative_to(ROOT)))
    }
    assert offenders == {}


def test_modules_stay_readable_in_one_sitting() -> None:
    long = {
        str(f.relative_to(ROOT)): n
        for f in python_files("platform_assets", "resources", "sensors")
        if (n := len(f.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these into a package: {long}"


def test_one_home_for_samples_and_the_demo() -> None:
    for domain in DOMAINS:
        package = ROOT / "platform_assets" / domain
        assert not (package / "demo.py").exists()
        assert not list(package.glob("sample*.py")), domain
