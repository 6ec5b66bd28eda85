"""Run metrics without a database: usual levels, shortfalls, metadata; dry-run decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_assets.ops.dry_run import DRY_RUN_TAG, DryRun
from platform_assets.ops.incremental import Window
from platform_assets.ops.metrics import RunMetrics, below_usual, usual_levels
from resources.publisher import DryRunResource, parse_flag


def test_half_as_many_positions_as_usual_warns() -> None:
    history = [{"rows_written": 1000.0}] * 6 + [{"rows_written": 1700.0}]  # mean 1100
    [shortfall] = below_usual({"rows_written": 500.0}, history, 0.5, ["rows_written"])
    assert shortfall.usual == pytest.approx(1100.0)
    assert str(shortfall) == "rows_written = 500 is 45% of its usual 1100 (warn below 50%)"
    assert below_usual({"rows_written": 560.0}, history, 0.5, ["rows_written"]) == []


def test_no_history_or_zero_level_gives_no_verdict() -> None:
    assert below_usual({"rows_written": 0.0}, [], 0.5, ["rows_written"]) == []
    assert (
        below_usual({"rows_rejected": 0.0}, [{"rows_rejected": 0.0}], 0.5, ["rows_rejected"]) == []
    )
    with pytest.raises(ValueError, match="fraction 1.5"):
        below_usual({}, [], 1.5, [])


@given(
    history=st.lists(st.floats(min_value=0, max_value=1e9), min_size=1, max_size=7),
    today=st.floats(min_value=0, max_value=1e9),
    fraction=st.floats(min_value=0, max_value=1),
)
def test_warns_exactly_below_the_fraction_of_the_mean(
    history: list[float], today: float, fraction: float
) -> None:
    mean = usual_levels([{"x": h} for h in history])["x"]
    warned = below_usual({"x": today}, [{"x": h} for h in history], fraction, ["x"])
    assert bool(warned) == (mean > 0 and today < fraction * mean)


def test_run_metrics_as_metadata() -> None:
    window = Window(datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
    metrics = RunMetrics.start("positions_job", "naf", "run-1", window=window)
    metrics.rows_read += 10
    metrics.rows_written += 8
    metrics.rows_rejected += 2
    metrics.finish()
    meta = metrics.as_metadata()
    assert (meta["rows_read"], meta["rows_written"], meta["rows_rejected"]) == (10, 8, 2)
    assert meta["window_start"] == "2026-12-01T00:00:00+00:00" and meta["duration_seconds"] >= 0
    assert metrics.finished_at is not None and metrics.finished_at >= metrics.started_at


@pytest.mark.parametrize(
    ("tags", "resource", "env", "expected"),
    [
        ({}, None, None, DryRun(False, "setting")),
        ({}, None, "true", DryRun(True, "setting")),
        ({}, DryRunResource(enabled=True), "false", DryRun(True, "resource")),
        ({}, DryRunResource(), "yes", DryRun(True, "setting")),
        ({DRY_RUN_TAG: "true"}, DryRunResource(enabled=False), None, DryRun(True, "tag")),
        ({DRY_RUN_TAG: "false"}, DryRunResource(enabled=True), "true", DryRun(False, "tag")),
    ],
)
def test_dry_run_tag_then_resource_then_setting(
    monkeypatch: pytest.MonkeyPatch,
    tags: dict[str, str],
    resource: DryRunResource | None,
    env: str | None,
    expected: DryRun,
) -> None:
    if env is None:
        monkeypatch.delenv("FISHNET_DRY_RUN", raising=False)
    else:
        monkeypatch.setenv("FISHNET_DRY_RUN", env)
    assert DryRun.from_tags(tags, resource) == expected


def test_bad_flags_are_named() -> None:
    with pytest.raises(ValueError, match="fishnet/dry_run='maybe' is not a boolean"):
        DryRun.from_tags({DRY_RUN_TAG: "maybe"})
    assert parse_flag("X", " ON ") is True


def test_would_write_metadata() -> None:
    rows = [{"id": 1, "at": datetime(2026, 12, 1, tzinfo=UTC), "raw": b"abc"}] * 7
    meta = DryRun(True, "tag").would_write("positions.positions", 7, rows)
    assert meta["dry_run"] is True and meta["would_write/positions.positions"] == 7
    sample = meta["would_write_sample/positions.positions"].value
    assert len(sample) == 5 and sample[0] == {
        "id": 1,
        "at": "2026-12-01 00:00:00+00:00",
        "raw": "<3 bytes>",
    }
    tuples = DryRun(True).would_write("t", 1, [(1, "a")], columns=["id", "name"])
    assert tuples["would_write_sample/t"].value == [{"id": 1, "name": "a"}]
    assert DryRun(False).would_write("t", 3, rows) == {"dry_run": False, "written/t": 3}
