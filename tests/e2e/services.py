"""Helpers of the end-to-end tests that start Dagster's services as a user's shell would.

One place for the things every such test needs: a free port, a process group started and stopped
cleanly, polling with the server logs in the failure, and the code location's load state read
from the webserver's GraphQL API.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from resources.warehouse import PROJECT_ROOT

BIN = Path(sys.executable).parent
LOCATION = "fishnet"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(
    what: str, check: Callable[[], Any], timeout: float, logs: Path | Sequence[Path]
) -> Any:
    """Poll `check` until it returns something truthy; fail with the end of the logs otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    files = [logs] if isinstance(logs, Path) else list(logs)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for log in files)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=20
    )
    answer.raise_for_status()
    data: dict[str, Any] = answer.json()["data"]
    return data


def location_state(url: str) -> str | None:
    """None while loading; "ok" once loaded; else the load error a user would see."""
    query = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    try:
        entries = graphql(url, query)["workspaceOrError"]["locationEntries"]
    except (httpx.HTTPError, KeyError, TypeError):
        return None
    for entry in entries:
        if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "RepositoryLocation":
                return "ok"
            return str(loaded.get("message") or "the code location failed to load")
    return None


def wait_for_location(
    url: str, process: subprocess.Popen[bytes], timeout: float, logs: Path | Sequence[Path]
) -> None:
    """Wait until the webserver at `url` has loaded the code location; fail on a load error."""
    state = wait_for(
        "the code location to load in the webserver",
        lambda: "the server exited" if process.poll() is not None else location_state(url),
        timeout,
        logs,
    )
    first_log = logs if isinstance(logs, Path) else logs[0]
    assert state == "ok", f"{state}\n{first_log.read_text()[-4000:]}"


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group from the project root, output appended to `log`."""
    with log.open("a") as out:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Started from a script, Dagster processes would ignore SIGINT (shared PITFALLS).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def stop(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> None:
    """Signal the whole process group (`dagster dev` stops its webserver and daemon on SIGTERM);
    kill it if it is still there after a minute."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)  # the group may outlive its leader
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
