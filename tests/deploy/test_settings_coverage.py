"""Every environment variable the code reads is declared, and reaches runs on every deployment path.

The bug this guards against: `deploy/dagster.yaml` forwarded ORACLE_SOURCE_URL while the code read
SOURCE_DB_URL, so production runs silently read the stand-in registry.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from resources.settings import SETTINGS
from resources.warehouse import PROJECT_ROOT
from tests.deploy.deployfiles import (
    COMPOSE,
    ENV_EXAMPLE,
    HELM_VALUES,
    INSTANCE,
    env_names,
    load_yaml,
    run_settings,
    sync_settings,
)

SCANNED_PACKAGES = ("platform_assets", "resources", "sensors")
#: The accessor itself reads a name it was given (and raises for an undeclared one).
ACCESSOR_MODULE = PROJECT_ROOT / "resources" / "settings.py"
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: Functions whose first argument is the name of a variable read from the environment.
READ_CALLS = {"getenv", "EnvVar", "setting", "setting_path", "setting_number", "int", "get_value"}
ENVIRON_READ_METHODS = {"get", "setdefault", "__getitem__"}


@dataclass(frozen=True)
class Read:
    """One place where the code reads an environment variable."""

    path: Path
    line: int
    names: frozenset[str] | None  # None: the name cannot be determined statically

    def where(self) -> str:
        return f"{self.path.relative_to(PROJECT_ROOT)}:{self.line}"


def _strings(node: ast.AST) -> set[str]:
    """Every env-var-like string literal inside an expression (a tuple, a dict, ...)."""
    return {
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and ENV_NAME.match(n.value)
    }


class _Scanner(ast.NodeVisitor):
    """Finds environment reads in one module, resolving names through its string constants.

    Names are resolved from literals, module-level constants (also imported ones, through
    `constants`), and local variables assigned from a literal, a constant, or a lookup in a
    constant table (e.g. `env, default = REFERENCE_FILES[source]`). A helper that reads the name
    it was given (`def _number(name): return setting_number(name)`) is resolved through the
    arguments of its calls in the same module. String literals are never
    parsed: the code a processing task runs, shipped as a program string, is not scanned.
    """

    def __init__(self, path: Path, constants: dict[str, set[str]]) -> None:
        self.path = path
        self.constants = constants
        self.local: list[dict[str, set[str]]] = [{}]
        self.functions: list[tuple[str, list[str]]] = []  # (name, parameters) being visited
        self.reads: list[Read] = []
        # reads of a helper's parameter: (helper, parameter index, line), resolved at the end
        self.param_reads: list[tuple[str, int, int]] = []
        self.call_args: dict[str, list[list[set[str]]]] = {}

    # scopes -------------------------------------------------------------------------------
    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.local.append({})
        self.functions.append((node.name, [a.arg for a in node.args.posonlyargs + node.args.args]))
        self.generic_visit(node)
        self.functions.pop()
        self.local.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _bind(self, target: ast.AST, values: set[str]) -> None:
        for name in ast.walk(target):
            if isinstance(name, ast.Name):
                self.local[-1].setdefault(name.id, set()).update(values)

    def visit_Assign(self, node: ast.Assign) -> None:
        values = self._values(node.value)
        if values:
            for target in node.targets:
                self._bind(target, values)
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        values = self._values(node.iter)
        if values:
            self._bind(node.target, values)
        self.generic_visit(node)

    # name resolution ----------------------------------------------------------------------
    def _values(self, node: ast.AST) -> set[str]:
        """Possible env-var names an expression evaluates to (empty: unknown)."""
        if isinstance(node, ast.Constant):
            return (
                {node.value}
                if isinstance(node.value, str) and ENV_NAME.match(node.value)
                else set()
            )
        if isinstance(node, ast.Name):
            for scope in reversed(self.local):
                if node.id in scope:
                    return scope[node.id]
            return self.constants.get(node.id, set())
        if isinstance(node, ast.Attribute):
            return self.constants.get(node.attr, set())
        if isinstance(node, ast.Subscript | ast.Call):  # TABLE[key], TABLE.items(), ...
            inner = node.value if isinstance(node, ast.Subscript) else node.func
            while isinstance(inner, ast.Attribute | ast.Subscript | ast.Call):
                inner = inner.value if not isinstance(inner, ast.Call) else inner.func
            return self._values(inner) if isinstance(inner, ast.Name) else set()
        if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
            return _strings(node)
        return set()

    def _record(self, node: ast.AST, key: ast.AST | None) -> None:
        line = getattr(node, "lineno", 0)
        if isinstance(key, ast.Name) and self.functions and not self._values(key):
            helper, params = self.functions[-1]
            if key.id in params:
                self.param_reads.append((helper, params.index(key.id), line))
                return
        names = self._values(key) if key is not None else set()
        self.reads.append(
            Read(self.path, getattr(node, "lineno", 0), frozenset(names) if names else None)
        )

    # reads --------------------------------------------------------------------------------
    @staticmethod
    def _is_environ(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id == "environ"
        )

    def resolved_reads(self) -> list[Read]:
        """The reads, helpers' parameter reads resolved through their call sites."""
        reads = list(self.reads)
        for helper, index, line in self.param_reads:
            calls = self.call_args.get(helper, [])
            values = [args[index] if index < len(args) else set() for args in calls]
            known = bool(values) and all(values)
            names = frozenset(set().union(*values)) if known else None
            reads.append(Read(self.path, line, names))
        return reads

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            args = [self._values(arg) for arg in node.args]
            self.call_args.setdefault(func.id, []).append(args)
        key = node.args[0] if node.args else None
        if isinstance(func, ast.Attribute) and self._is_environ(func.value):
            if func.attr in ENVIRON_READ_METHODS:
                self._record(node, key)
        elif (
            isinstance(func, ast.Attribute)
            and func.attr == "getenv"
            or isinstance(func, ast.Name)
            and func.id in {"getenv", "setting", "setting_path", "setting_number"}
            or isinstance(func, ast.Name)
            and func.id == "EnvVar"
        ):
            self._record(node, key)
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "EnvVar"
        ):  # EnvVar.int("X")
            self._record(node, key)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if self._is_environ(node.value) and isinstance(node.ctx, ast.Load):
            self._record(node, node.slice)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:  # "X" in os.environ
        if any(isinstance(op, ast.In | ast.NotIn) for op in node.ops) and any(
            self._is_environ(c) for c in node.comparators
        ):
            self._record(node, node.left)
        self.generic_visit(node)


def _sources() -> Iterator[Path]:
    for package in SCANNED_PACKAGES:
        yield from sorted((PROJECT_ROOT / package).rglob("*.py"))


def _module_constants(tree: ast.Module) -> dict[str, set[str]]:
    """`NAME = "VALUE"` and constant tables (`NAME: dict[...] = {...}`) at module level."""
    out: dict[str, set[str]] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.AST | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name) and value is not None:
                names = _strings(value) if not isinstance(value, ast.Call) else set()
                if names:
                    out[target.id] = names
    return out


def collect_reads() -> list[Read]:
    """Every environment read in the scanned packages."""
    trees = {path: ast.parse(path.read_text(), filename=str(path)) for path in _sources()}
    constants: dict[str, set[str]] = {}
    for tree in trees.values():  # constants are imported across modules by name
        for name, values in _module_constants(tree).items():
            constants.setdefault(name, set()).update(values)
    reads: list[Read] = []
    for path, tree in trees.items():
        local = {**constants, **_module_constants(tree)}
        scanner = _Scanner(path, local)
        scanner.visit(tree)
        reads += scanner.resolved_reads()
    return reads


def test_the_scanner_sees_the_reads_of_the_known_shapes(tmp_path: Path) -> None:
    """The scanner itself: each shape of read is found and named; strings are not code."""
    assert collect_reads(), "no environment read found in the project: the scanner is broken"
    sample = ast.parse(
        "import os\n"
        "from dagster import EnvVar\n"
        "URL_ENV = 'A_URL'\n"
        "TABLE = {'x': ('B_PATH', 'b.csv')}\n"
        "def f(source):\n"
        "    env, default = TABLE[source]\n"
        "    os.environ.get(env)\n"  # line 7
        "    os.getenv(URL_ENV)\n"  # line 8
        "    EnvVar('C_TOKEN')\n"  # line 9
        "    os.environ['D_DIR']\n"  # line 10
        "    os.environ[source]\n"  # line 11: unknown
        "    'os.environ[\"E_NOT_CODE\"]'\n"
        "    os.environ['F_SET'] = '1'\n"  # a write, not a read
        "def _number(name):\n"
        "    return setting_number(name)\n"  # line 15: resolved through its calls
        "def g():\n"
        "    _number('G_LIMIT')\n"
    )
    scanner = _Scanner(tmp_path / "sample.py", _module_constants(sample))
    scanner.visit(sample)
    found = {r.line: r.names for r in scanner.resolved_reads()}
    assert found == {
        7: frozenset({"B_PATH"}),
        8: frozenset({"A_URL"}),
        9: frozenset({"C_TOKEN"}),
        10: frozenset({"D_DIR"}),
        11: None,
        15: frozenset({"G_LIMIT"}),
    }


def test_the_code_reads_only_declared_settings() -> None:
    """A variable read anywhere in platform_assets, resources or sensors is in SETTINGS."""
    problems = []
    for read in collect_reads():
        if read.path == ACCESSOR_MODULE:
            continue
        if read.names is None:
            problems.append(
                f"{read.where()}: reads an environment variable whose name is not a literal or a "
                "module constant; read it with resources.settings.setting(NAME) instead"
            )
            continue
        for name in sorted(read.names - set(SETTINGS)):
            problems.append(
                f"{read.where()}: reads {name}, which resources/settings.py does not declare"
            )
    assert not problems, "\n".join(problems)


def _missing(where: str, names: set[str]) -> list[str]:
    return [f"{where}: {s.name} is missing" for s in run_settings() if s.name not in names]


def test_compose_gives_every_run_setting_to_the_code_server_and_the_daemon() -> None:
    """The code server evaluates sensors; the daemon forwards its environment to runs."""
    services = load_yaml(COMPOSE)["services"]
    problems = []
    for service in ("code", "daemon"):
        names = env_names(services[service].get("environment"))
        problems += _missing(f"docker-compose.yml services.{service}.environment", names)
    assert not problems, "\n".join(problems)


def test_the_docker_run_launcher_forwards_exactly_what_runs_read() -> None:
    config = load_yaml(INSTANCE)
    forwarded = config["run_launcher"]["config"]["env_vars"]
    names = {item.split("=", 1)[0] for item in forwarded}
    assert len(names) == len(forwarded), f"duplicates in env_vars: {forwarded}"
    wanted = {s.name for s in run_settings()} | {"DAGSTER_PG_URL"}  # the instance reads it
    assert not wanted - names, f"deploy/dagster.yaml env_vars misses {sorted(wanted - names)}"
    assert not names - wanted, (
        f"deploy/dagster.yaml env_vars forwards {sorted(names - wanted)}, which no run reads "
        "(a renamed setting?)"
    )
    assert not [item for item in forwarded if "=" in item], "values belong in the environment"


def test_env_example_lists_every_setting_and_no_secret() -> None:
    text = ENV_EXAMPLE.read_text()
    assigned: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            assigned.setdefault(match.group(1), match.group(2).strip())
    missing = [name for name in SETTINGS if name not in assigned]
    assert not missing, f"deploy/.env.example misses {missing}"
    for name in [s.name for s in SETTINGS.values() if s.secret] + ["POSTGRES_PASSWORD"]:
        value = assigned.get(name, "")
        assert value == "" or value.startswith("<-"), f".env.example gives {name} a value"


def test_helm_values_give_every_run_setting_to_the_code_location() -> None:
    """Run pods inherit the user deployment's env (includeConfigInLaunchedRuns)."""
    values = load_yaml(HELM_VALUES)
    deployments = values["dagster-user-deployments"]["deployments"]
    assert deployments, "no user deployment"
    for deployment in deployments:
        assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
        env = {item["name"]: item for item in deployment["env"]}
        problems = _missing(f"helm values: deployment {deployment['name']} env", set(env))
        assert not problems, "\n".join(problems)
        for setting in SETTINGS.values():
            item = env.get(setting.name)
            if setting.secret and item is not None:
                assert "value" not in item, f"{setting.name} is a secret: use a secretKeyRef"
                assert "secretKeyRef" in item["valueFrom"], setting.name


def test_generated_blocks_match_settings() -> None:
    """The deploy files were regenerated after the last settings change."""
    stale = sync_settings().stale_files(write=False)
    assert not stale, (
        f"{stale} are out of date with resources/settings.py: run "
        "`.venv/bin/python deploy/sync_settings.py`"
    )
