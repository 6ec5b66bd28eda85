"""The web UI in a real browser: `dagster-webserver` and `dagster-daemon` on PostgreSQL, driven
through headless Chromium (Debian's `chromium`, by Playwright) the way a user works.

A user opens the asset graph and sees every domain's groups with their assets and kinds, clicks
"Materialize" on reference/species, watches the run succeed, then reads the row count and the
column schema on the asset's page. Screenshots of each step are kept under the test's tmp_path.
Skips, saying why, when Chromium is absent (`.ci/install-browser` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest

from resources.warehouse import DatabaseUrls
from tests.e2e.services import (
    BIN,
    LOCATION,
    free_port,
    graphql,
    start,
    stop,
    wait_for,
    wait_for_location,
)

pytestmark = pytest.mark.e2e
ASSET = ("reference", "species")
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
]


def _chromium() -> str:
    found = os.environ.get("CHROMIUM_PATH") or next(
        (p for p in CHROMIUM_CANDIDATES if Path(p).is_file()), None
    )
    if not found:
        pytest.skip(
            "Chromium is not installed (Debian package `chromium`); run .ci/install-browser"
        )
    return found


@pytest.fixture
def dagster_services(
    dagster_env: dict[str, str], database: DatabaseUrls, tmp_path: Path
) -> Iterator[tuple[str, list[Path]]]:
    """`dagster-webserver` and `dagster-daemon` on a free port, on this test's database."""
    from migrations import upgrade

    upgrade(database)
    port = free_port()
    env = {**dagster_env, "DAGSTER_GRPC_MAX_WORKERS": "32", "FISHNET_SENSOR_WAIT_SECONDS": "0"}
    # The project's code location, by its `defs` attribute (as deploy/ loads it).
    workspace = str(tmp_path / "workspace.yaml")
    Path(workspace).write_text(
        "load_from:\n  - python_module:\n      module_name: platform_assets.definitions\n"
        f"      attribute: defs\n      location_name: {LOCATION}\n"
    )
    logs = [tmp_path / "webserver.log", tmp_path / "daemon.log"]
    with ExitStack() as stack:
        webserver = start(
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", workspace],
            env,
            logs[0],
        )
        stack.callback(stop, webserver)
        daemon = start([str(BIN / "dagster-daemon"), "run", "-w", workspace], env, logs[1])
        stack.callback(stop, daemon)
        url = f"http://127.0.0.1:{port}"
        wait_for_location(url, webserver, 240, logs)
        yield url, logs


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium page (Playwright's sync API on Debian's browser)."""
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1600, "height": 1400})
        context.set_default_timeout(30_000)
        page = context.new_page()
        try:
            yield page
        finally:
            page.screenshot(path=str(tmp_path / "last.png"))
            context.close()
            browser.close()


WELCOME = "Join the Dagster community"


def _dismiss_first_visit_dialog(page: Any) -> None:
    """The first visit opens a welcome dialog (newsletter sign-up) a moment after the page: skip
    it, and let Playwright skip it again whenever it would cover what the test clicks."""
    dialog = page.get_by_role("dialog").filter(has_text=WELCOME)
    try:
        dialog.wait_for(state="visible", timeout=20_000)
    except Exception:  # Playwright's TimeoutError: not shown (already dismissed in this home)
        pass
    else:
        dialog.get_by_role("button", name="Skip").click()
        dialog.wait_for(state="hidden")
    page.add_locator_handler(dialog, lambda d: d.get_by_role("button", name="Skip").click())


def _kinds_shown(page: Any) -> set[str]:
    """The kinds in the Definition panel of an asset page: a tag's text, or for kinds drawn
    as an icon only (csv, yaml, ...), the icon's accessible name."""
    label = page.get_by_text("Kinds", exact=True).first
    label.wait_for(state="visible")
    panel = label.locator("xpath=..")
    icons = panel.locator("[role=img][aria-label]").evaluate_all(
        "icons => icons.map(icon => icon.getAttribute('aria-label'))"
    )
    return {name.lower() for name in icons} | set(panel.inner_text().lower().split())


def _expected_groups() -> dict[str, dict[str, set[str]]]:
    """group -> asset key path ("reference/species") -> kinds, from the one Definitions object."""
    from platform_assets.definitions import defs

    groups: dict[str, dict[str, set[str]]] = {}
    for spec in defs.resolve_all_asset_specs():
        group = groups.setdefault(spec.group_name or "default", {})
        group["/".join(spec.key.path)] = set(spec.kinds)
    return groups


def _run_status(url: str, run_id: str) -> str:
    query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
    return graphql(url, query, {"id": run_id})["runOrError"]["status"]


def _latest_run(url: str) -> tuple[str, str] | None:
    query = "{ runsOrError(limit: 1) { ... on Runs { results { runId status } } } }"
    results = graphql(url, query)["runsOrError"]["results"]
    return (results[0]["runId"], results[0]["status"]) if results else None


def test_a_user_materialises_an_asset_and_reads_its_page_in_chromium(
    dagster_services: tuple[str, list[Path]], page: Any, database: DatabaseUrls, tmp_path: Path
) -> None:
    url, logs = dagster_services
    shots = tmp_path

    # 1. Each domain's group: its graph shows its assets, each asset's page shows its kinds
    #    (the graph draws kind tags only when zoomed in on a node).
    page.goto(f"{url}/asset-groups")
    _dismiss_first_visit_dialog(page)
    page.screenshot(path=str(shots / "01-global-graph.png"))
    groups = _expected_groups()
    for group, assets in sorted(groups.items()):
        page.goto(f"{url}/locations/{LOCATION}/asset-groups/{group}")
        names = [path.rsplit("/", 1)[-1] for path in assets]
        # the graph: its nodes are drawn (a large group extends past the viewport)
        page.get_by_text(names[0], exact=True).first.wait_for(state="attached")
        page.screenshot(path=str(shots / f"02-group-{group}-graph.png"))
        # the group's list: one row per asset
        page.goto(f"{url}/locations/{LOCATION}/asset-groups/{group}/list")
        for path in assets:
            page.locator(f'a[href="/assets/{path}"]').first.wait_for(state="attached")
        page.screenshot(path=str(shots / f"02-group-{group}-list.png"))
    missing_kinds = []
    for assets in groups.values():
        for path, kinds in sorted(assets.items()):
            page.goto(f"{url}/assets/{path}")
            shown = _kinds_shown(page)
            missing_kinds += [f"{path}: {k}" for k in sorted(kinds) if k.lower() not in shown]
    page.screenshot(path=str(shots / "02-asset-kinds.png"))
    assert not missing_kinds, f"kinds not shown on the asset pages: {missing_kinds}"

    # 2. "Materialize" on reference/species, from the asset's page.
    before = _latest_run(url)
    page.goto(f"{url}/assets/{'/'.join(ASSET)}")
    page.get_by_role("button", name=re.compile(r"\bMaterialize$")).first.click()
    page.screenshot(path=str(shots / "03-materialize-clicked.png"))
    run_id = wait_for(
        "the run the button launched",
        lambda: (run := _latest_run(url)) and run != before and run[0],
        60,
        logs,
    )
    finished = {"SUCCESS", "FAILURE", "CANCELED"}
    status = wait_for(
        "the materialisation run to finish",
        lambda: (status := _run_status(url, run_id)) in finished and status,
        600,
        logs,
    )
    page.goto(f"{url}/runs/{run_id}")
    page.get_by_text("Success", exact=False).first.wait_for(state="visible")
    page.screenshot(path=str(shots / "04-run.png"))
    assert status == "SUCCESS", f"run {run_id} ended {status}"

    # 3. The asset's page shows the row count and the column schema.
    with psycopg.connect(database.libpq) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM reference.species").fetchone() or (0,)
    assert rows > 100
    page.goto(f"{url}/assets/{'/'.join(ASSET)}")
    page.get_by_text("Columns", exact=False).first.wait_for(state="visible")
    page.screenshot(path=str(shots / "05-asset-page.png"), full_page=True)
    text = page.locator("body").inner_text()
    row_count = page.get_by_text("Row count", exact=True).first.locator("xpath=..").inner_text()
    assert re.search(rf"\b{rows:,}\b|\b{rows}\b", row_count), f"row count {rows}: {row_count!r}"
    from platform_assets.definitions import defs

    (spec,) = [s for s in defs.resolve_all_asset_specs() if tuple(s.key.path) == ASSET]
    declared = spec.metadata["dagster/column_schema"]
    columns = [c.name for c in getattr(declared, "schema", declared).columns]
    missing = [c for c in columns if c not in text]
    assert not missing, f"columns {missing} not shown on the asset page"
    shutil.copy(shots / "05-asset-page.png", shots / "final.png")
