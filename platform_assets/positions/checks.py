"""Checks of the positions assets: no NAF line waits in the quarantine, one last position per
track, and the NAF inbox brings its usual volume (``usual_naf_volume``: the latest ingestion's
records read and positions stored, from ``ops.run_metrics``, against the mean of the 7 runs
before it; warns below half)."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from platform_assets.ops.checks import usual_level_check
from platform_assets.positions.assets import LAST_POSITIONS, POSITIONS
from platform_assets.positions.inbox import INGEST_JOB, INGEST_SOURCE
from resources.warehouse import WarehouseResource, fetch_one


@asset_check(
    asset=POSITIONS,
    description="No NAF line waits in positions.naf_quarantine (fix the parser or the feed, "
    "then run positions_replay_job).",
)
def no_quarantined_naf_lines(warehouse: WarehouseResource) -> AssetCheckResult:
    """Warn while bad lines wait for a replay."""
    with warehouse.connect() as conn:
        count = fetch_one(conn, "SELECT count(*) FROM positions.naf_quarantine")[0]
        sample = conn.execute(
            "SELECT source_file, line_number, left(error, 200) FROM positions.naf_quarantine "
            "ORDER BY last_attempt_at DESC LIMIT 5"
        ).fetchall()
    return AssetCheckResult(
        passed=count == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "quarantined": count,
            "latest": MetadataValue.json(
                [{"file": f, "line": n, "error": e} for f, n, e in sample]
            ),
        },
    )


@asset_check(
    asset=LAST_POSITIONS,
    description="One row per track, and every stored track with a position has one.",
)
def last_positions_one_row_per_track(warehouse: WarehouseResource) -> AssetCheckResult:
    """Duplicates would show a track twice on the map; a missing one would hide a vessel."""
    with warehouse.connect() as conn:
        rows, tracks = fetch_one(
            conn, "SELECT count(*), count(DISTINCT track_id) FROM positions.last_positions"
        )
        missing = fetch_one(
            conn,
            "SELECT count(*) FROM positions.track_state t WHERE t.last_position_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM positions.last_positions l "
            "WHERE l.track_id = t.track_id)",
        )[0]
    return AssetCheckResult(
        passed=rows == tracks,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows": rows, "tracks": tracks, "tracks_without_last_position": missing},
    )


usual_naf_volume = usual_level_check(
    POSITIONS,
    job=INGEST_JOB,
    source=INGEST_SOURCE,
    figures=("rows_read", "rows_written"),
    fraction=0.5,
)

POSITIONS_CHECKS = [no_quarantined_naf_lines, last_positions_one_row_per_track, usual_naf_volume]
