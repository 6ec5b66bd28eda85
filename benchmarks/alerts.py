"""Position alerts throughput against the binary COPY of the same window, measured in one run.

Setup (not timed): a scratch database at the latest migration; `--stored` synthetic enriched
positions (default 10,000,000) of `--vessels` vessels emitting every 10 minutes, the last 24 h
holding `--window` of them (default ~1,000,000), loaded with binary COPY (ADBC) into
`positions.positions` (daily partitions); 500 synthetic zone polygons
(platform_assets.samples.alerts.benchmark_zones) plus two bathymetry bands; 20 active
specifications mixing zones (1-3 layers, 5-40 zones each), fishing-only or all positions, flag
states, schedules, a minimum depth and register/logbook filters.

Timed:
- baseline: `COPY (SELECT * FROM positions.positions WHERE <last 24 h>) TO STDOUT (FORMAT
  BINARY)` read to the end by psycopg;
- alerts: `platform_assets.alerts.run.run_position_alerts` end to end (read the window, read
  specifications and zones, evaluate, reconcile, write pending alerts).
Each of `--repeat` rounds runs the baseline then the alerts (interleaved, as the machine is shared);
the figure is median alerts / median baseline. Target: alerts <= 3x baseline.

Usage: nice .venv/bin/python benchmarks/alerts.py [--quick] [--keep] [--reuse]
`--reuse` keeps the scratch database (one per size) and skips the load when it already holds the
positions. Writes benchmarks/results/alerts.json (alerts_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from migrations import upgrade  # noqa: E402
from platform_assets.alerts import store  # noqa: E402
from platform_assets.alerts.run import run_position_alerts  # noqa: E402
from platform_assets.alerts.specifications import (  # noqa: E402
    GearFilter,
    PositionAlertSpecification,
    Schedule,
)
from platform_assets.alerts.zones import Zone  # noqa: E402
from platform_assets.samples.alerts import benchmark_zones  # noqa: E402
from resources.warehouse import WarehouseResource, resolve_database_urls  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BENCH_DB = "fishnet_bench_alerts"
NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)
STEP_MIN = 10
FLAGS = np.array(["FR", "ES", "GB", "BE", "NL", "IE", "PT", "DE"], dtype=object)


def load_positions(adbc, vessels: int, days: float, seed: int = 7) -> int:
    """Synthetic enriched tracks (random walks over the Bay of Biscay / Channel) ending at NOW."""
    rng = np.random.default_rng(seed)
    steps = int(days * 24 * 60 / STEP_MIN)
    start = NOW - timedelta(minutes=STEP_MIN * steps)
    with adbc.cursor() as cur:
        for d in range(int(days) + 2):
            cur.execute(
                f"SELECT positions.ensure_partition('{(start + timedelta(days=d)).date()}')"
            )
            cur.fetchall()
    adbc.commit()
    lon0 = rng.uniform(-10, 2, vessels)
    lat0 = rng.uniform(43, 52, vessels)
    flags = FLAGS[rng.integers(0, len(FLAGS), vessels)]
    cfrs = np.array([f"BEN{v:09d}" for v in range(vessels)], dtype=object)
    offsets = rng.integers(0, STEP_MIN * 60, vessels)
    total = 0
    chunk = max(1, 2_000_000 // vessels)  # steps per load batch
    lon, lat = lon0.copy(), lat0.copy()
    for first in range(0, steps, chunk):
        n_steps = min(chunk, steps - first)
        dlon = rng.normal(0, 0.01, (n_steps, vessels)).cumsum(axis=0) + lon
        dlat = rng.normal(0, 0.007, (n_steps, vessels)).cumsum(axis=0) + lat
        lon, lat = dlon[-1], dlat[-1]
        step_idx = np.arange(first, first + n_steps)[:, None]
        ts = (
            np.datetime64(start.replace(tzinfo=None), "us")
            + (step_idx * STEP_MIN * 60 + offsets[None, :]).astype("timedelta64[s]")
        ).ravel()
        n = n_steps * vessels
        vessel = np.tile(np.arange(vessels), n_steps)
        ids = total + np.arange(n, dtype=np.int64) + 1
        fishing = rng.random(n) < 0.45
        table = pa.table(
            {
                "id": pa.array(ids),
                "track_id": pa.array(vessel.astype(np.int64) + 1),
                "internal_reference_number": pa.array(cfrs[vessel], pa.string()),
                "external_reference_number": pa.array(cfrs[vessel], pa.string()),
                "ircs": pa.array(cfrs[vessel], pa.string()),
                "vessel_name": pa.array(cfrs[vessel], pa.string()),
                "flag_state": pa.array(flags[vessel], pa.string()),
                "latitude": pa.array(np.clip(dlat.ravel(), 40, 55)),
                "longitude": pa.array(np.clip(dlon.ravel(), -12, 4)),
                "speed": pa.array(rng.uniform(0, 12, n)),
                "course": pa.array(rng.uniform(0, 360, n)),
                "datetime_utc": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "is_manual": pa.array(np.zeros(n, bool)),
                "is_at_port": pa.array(rng.random(n) < 0.05),
                "meters_from_previous_position": pa.array(rng.uniform(0, 4000, n)),
                "time_since_previous_position": pa.array(np.full(n, STEP_MIN / 60)),
                "average_speed": pa.array(rng.uniform(0, 12, n)),
                "is_fishing": pa.array(fishing),
                "time_emitting_at_sea": pa.array(rng.uniform(0, 100, n)),
            }
        )
        with adbc.cursor() as cur:
            cur.adbc_ingest("positions", table, mode="append", db_schema_name="positions")
        adbc.commit()
        total += n
        print(f"  loaded {total:,} positions", flush=True)
    with adbc.cursor() as cur:
        cur.execute(f"SELECT setval('positions.positions_id_seq', {total + 1})")
        cur.fetchall()
        cur.execute("ANALYZE positions.positions")
    adbc.commit()
    return total


def specifications(zone_names: list[str], layers: dict[str, str], seed: int = 3) -> list:
    """20 active specifications of varied shapes."""
    rng = np.random.default_rng(seed)
    by_layer: dict[str, list[str]] = {}
    for name in zone_names:
        by_layer.setdefault(layers[name], []).append(name)
    specs = []
    for i in range(20):
        n_layers = 1 + i % 3
        chosen_layers = list(rng.choice(sorted(by_layer), n_layers, replace=False))
        zones = [
            str(z)
            for layer in chosen_layers
            for z in rng.choice(by_layer[layer], int(rng.integers(5, 40)), replace=False)
        ]
        fields: dict = {
            "name": f"bench spec {i:02d}",
            "zones": zones,
            "only_fishing_positions": i % 4 != 0,
            "track_analysis_depth_hours": 24 if i % 5 else 12,
        }
        if i % 3 == 0:
            fields["flag_states"] = list(rng.choice(FLAGS, 3, replace=False))
        if i % 7 == 0:
            fields["schedule"] = Schedule(weekdays=[0, 1, 2, 3, 4])
        if i == 5:
            fields["min_depth_m"] = 200
        if i == 11:
            fields["gears"] = [GearFilter(gear="OTB", min_mesh=70)]
        specs.append(PositionAlertSpecification(**fields))
    return specs


def copy_baseline(libpq: str) -> tuple[float, int]:
    """Seconds to stream the window's positions out in binary COPY, and the bytes."""
    sql = (
        "COPY (SELECT * FROM positions.positions WHERE datetime_utc > "
        f"'{(NOW - timedelta(hours=24)).isoformat()}' AND datetime_utc <= '{NOW.isoformat()}') "
        "TO STDOUT (FORMAT BINARY)"
    )
    size = 0
    started = time.perf_counter()
    with psycopg.connect(libpq) as conn, conn.cursor() as cur, cur.copy(sql) as copy:
        for block in copy:
            size += len(block)
    return time.perf_counter() - started, size


def _loaded(server_libpq: str, libpq: str, name: str) -> int:
    """Positions already in a kept scratch database (0 when there is none)."""
    with psycopg.connect(server_libpq) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            return 0
    with psycopg.connect(libpq) as conn:
        row = conn.execute("SELECT count(*) FROM positions.positions").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=10_000_000)
    parser.add_argument("--window", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000,000 stored, 100,000 in window")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the database and reuse its positions if loaded"
    )
    args = parser.parse_args()
    if args.quick:
        args.stored, args.window = 1_000_000, 100_000
        args.repeat = max(args.repeat, 7)
    per_day = 24 * 60 // STEP_MIN
    vessels = max(1, round(args.window / per_day))
    days = args.stored / (vessels * per_day)

    bench_db = f"{BENCH_DB}_{args.stored}"
    server = resolve_database_urls()
    urls = server.for_database(bench_db)
    warehouse = WarehouseResource(database_url=urls.libpq)
    stored = _loaded(server.libpq, urls.libpq, bench_db) if args.reuse else 0
    load_seconds: float | None = None  # None: positions reused from an earlier --reuse run
    if stored < args.stored * 0.99:
        with psycopg.connect(server.libpq, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{bench_db}"')
        upgrade(urls)
        print(f"loading {args.stored:,} positions of {vessels:,} vessels over {days:.1f} days")
        started = time.perf_counter()
        with warehouse.adbc() as adbc:
            stored = load_positions(adbc, vessels, days)
        load_seconds = time.perf_counter() - started
    else:
        print(f"reusing {stored:,} positions in {bench_db}")

    zones = benchmark_zones(500)
    zones += [
        Zone("bench deep 200", "bathymetry", shapely.box(-12, 40, -5, 55), 200),
        Zone("bench deep 800", "bathymetry", shapely.box(-12, 40, -8, 55), 800),
    ]
    with warehouse.connect() as conn:
        conn.execute("UPDATE alerts.position_alert_specifications SET is_active = false")
        store.load_zones(conn, zones)
        specs = specifications([z.name for z in zones[:500]], {z.name: z.layer for z in zones})
        for spec in specs:
            store.insert_specification(conn, spec)
        conn.commit()

    # interleaved (copy, alerts) pairs so that load from other processes hits both alike
    copy_runs, alert_runs, breakdowns = [], [], []
    result = None
    for _ in range(args.repeat):
        copy_runs.append(copy_baseline(urls.libpq))
        with warehouse.connect() as conn, warehouse.adbc() as adbc:
            started = time.perf_counter()
            result = run_position_alerts(conn, adbc, NOW)
            conn.commit()
            alert_runs.append(time.perf_counter() - started)
        breakdowns.append(result.seconds)
    assert result is not None
    copy_seconds = statistics.median(s for s, _ in copy_runs)
    alerts_seconds = statistics.median(alert_runs)
    pair_ratios = [a / c for a, (c, _) in zip(alert_runs, copy_runs, strict=True)]
    with warehouse.connect() as conn:
        by_status = store.count_by_status(conn)
    ratio = alerts_seconds / copy_seconds
    breakdown = {k: statistics.median(b.get(k, 0.0) for b in breakdowns) for k in result.seconds}
    report = {
        "benchmark": "alerts",
        "quick": args.quick,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "stored_positions": stored,
        "vessels": vessels,
        "window_positions": result.inputs.get("positions"),
        "specifications": result.inputs.get("specifications"),
        "zones": result.inputs.get("zones"),
        "geometry_candidates": result.inputs.get("geometry_candidates"),
        "zone_pairs": result.inputs.get("zone_pairs"),
        "alerts_by_status": by_status,
        "load_seconds": None if load_seconds is None else round(load_seconds, 1),
        "reused_database": load_seconds is None,
        "copy_binary_seconds": round(copy_seconds, 3),
        "copy_binary_runs": [round(s, 3) for s, _ in copy_runs],
        "copy_binary_mb": round(copy_runs[0][1] / 1e6, 1),
        "position_alerts_seconds": round(alerts_seconds, 3),
        "position_alerts_runs": [round(s, 3) for s in alert_runs],
        "median_breakdown_seconds": {k: round(v, 3) for k, v in breakdown.items()},
        "ratio_to_copy": round(ratio, 2),
        "ratio_definition": "median alerts run / median binary COPY run, interleaved pairs",
        "pair_ratios": [round(r, 2) for r in pair_ratios],
        "load_average_1min": round(os.getloadavg()[0], 2),
        "target_ratio": 3.0,
        "passed": ratio <= 3.0,
        "errors": result.errors,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("alerts_quick.json" if args.quick else "alerts.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if not (args.keep or args.reuse):
        with psycopg.connect(server.libpq, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
