"""Run metrics, the usual-level check and dry-run transactions on real PostgreSQL."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset, materialize

from platform_assets.ops.checks import usual_level_check
from platform_assets.ops.dry_run import DryRun
from platform_assets.ops.incremental import IncrementalConfig, Window, resolve_window
from platform_assets.ops.metrics import (
    RunMetrics,
    last_success_end,
    latest_and_history,
    record_run_metrics,
)
from resources.publisher import DryRunResource
from resources.warehouse import DatabaseUrls, WarehouseResource

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(
    conn: psycopg.Connection, day: int, rows: int, status: str = "success", source: str = "naf"
) -> None:
    window = Window(T0 + timedelta(days=day), T0 + timedelta(days=day + 1))
    metrics = RunMetrics.start("positions_job", source, f"run-{source}-{day}", window=window)
    metrics.rows_written = rows
    metrics.started_at = window.end
    metrics.finish(status)  # type: ignore[arg-type]
    record_run_metrics(conn, metrics)


def test_metrics_history_and_the_next_window(database: DatabaseUrls) -> None:
    with psycopg.connect(database.libpq) as conn:
        for day in range(10):
            record(conn, day, 1000 + day)
        record(conn, 10, 5, status="failure")
        record(conn, 3, 99, source="other")
        assert (
            record_run_metrics(conn, RunMetrics.start("positions_job", "naf", "dry"), dry_run=True)
            is False
        )
        latest, history = latest_and_history(conn, "positions_job", "naf")
        end = last_success_end(conn, "positions_job", "naf")
        assert last_success_end(conn, "positions_job", "nothing") is None
        count = conn.execute("SELECT count(*) FROM ops.run_metrics").fetchone()
    assert latest is not None and latest["rows_written"] == 1009
    assert [h["rows_written"] for h in history] == [1008, 1007, 1006, 1005, 1004, 1003, 1002]
    assert end == T0 + timedelta(days=10)
    assert count == (12,)
    now = T0 + timedelta(days=12)
    assert resolve_window(IncrementalConfig(), now=now, last_success_end=end) == Window(end, now)


def test_a_retried_run_replaces_its_row(database: DatabaseUrls) -> None:
    with psycopg.connect(database.libpq) as conn:
        record(conn, 1, 10)
        record(conn, 1, 20)
        assert conn.execute("SELECT rows_written FROM ops.run_metrics").fetchall() == [(20,)]


POSITIONS = AssetKey(["positions", "positions"])


@asset(key=POSITIONS)
def positions_stub() -> MaterializeResult:
    return MaterializeResult()


@pytest.mark.parametrize(("latest", "passed"), [(400, False), (600, True)])
def test_usual_level_check_warns_below_half(
    database: DatabaseUrls, latest: int, passed: bool
) -> None:
    with psycopg.connect(database.libpq) as conn:
        for day in range(8):
            record(conn, day, 1000)
        record(conn, 8, latest)
    check = usual_level_check(POSITIONS, job="positions_job", source="naf", fraction=0.5)
    result = materialize(
        [positions_stub, check],
        resources={"warehouse": WarehouseResource(database_url=database.libpq)},
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed is passed
    assert evaluation.check_name == "usual_level_positions_job_naf"
    assert evaluation.metadata["usual/rows_written"].value == 1000.0
    if not passed:
        assert "rows_written = 400 is 40% of its usual 1000" in (evaluation.description or "")


def test_usual_level_check_without_history_passes(database: DatabaseUrls) -> None:
    check = usual_level_check(POSITIONS, job="positions_job", source="naf")
    result = materialize(
        [positions_stub, check],
        resources={"warehouse": WarehouseResource(database_url=database.libpq)},
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and "not enough history" in (evaluation.description or "")
    with pytest.raises(ValueError, match="unknown run metric"):
        usual_level_check(POSITIONS, job="j", figures=["rows"])


def test_dry_run_rolls_back_what_an_asset_wrote(database: DatabaseUrls) -> None:
    """A domain asset written the documented way: exact counts, nothing kept under dry run."""

    @asset(key=AssetKey(["ops", "dry_run_probe"]))
    def probe(
        context: AssetExecutionContext, warehouse: WarehouseResource, dry_run: DryRunResource
    ) -> MaterializeResult:
        dry = DryRun.from_context(context, dry_run)
        with warehouse.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS public.probe (n int PRIMARY KEY)")
            cursor = conn.execute(
                "INSERT INTO public.probe SELECT generate_series(1, 3) ON CONFLICT DO NOTHING RETURNING n"
            )
            sample = cursor.fetchall()
            dry.finish(conn)
        return MaterializeResult(
            metadata=dry.would_write("public.probe", len(sample), sample, columns=["n"])
        )

    resources = {
        "warehouse": WarehouseResource(database_url=database.libpq),
        "dry_run": DryRunResource(),
    }
    dry_result = materialize([probe], resources=resources, tags={"fishnet/dry_run": "true"})
    [meta] = [m.metadata for m in dry_result.asset_materializations_for_node("ops__dry_run_probe")]
    assert meta["would_write/public.probe"].value == 3
    assert meta["would_write_sample/public.probe"].value == [{"n": 1}, {"n": 2}, {"n": 3}]
    with psycopg.connect(database.libpq) as conn:
        assert conn.execute("SELECT to_regclass('public.probe')").fetchone() == (None,)

    real = materialize([probe], resources=resources)
    [meta] = [m.metadata for m in real.asset_materializations_for_node("ops__dry_run_probe")]
    assert meta["written/public.probe"].value == 3
    with psycopg.connect(database.libpq) as conn:
        assert conn.execute("SELECT count(*) FROM public.probe").fetchone() == (3,)
