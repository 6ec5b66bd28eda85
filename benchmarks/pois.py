"""POI transform + load against a plain binary COPY of the same final rows, in the same run.

1. First load: N synthetic events-site records (platform_assets/samples/pois/fixtures.py) are
   stored as a raw extract (not timed: that is the extract), then timed: the pending records are
   read, transformed (specific + generic, geocoded against the bundled commune polygons) and
   loaded into empty tables. Baseline: the final rows of poi, address, address_poi, activity and
   registered_poi (read back from the tables) binary-COPYed into empty copies of those tables
   (same indexes). Target: first load <= 3x the baseline.
2. Second run: a new extract where 1% of the records changed and 0.5% disappeared. Timed the same
   way. Target: <= 0.3x the first load's time, and only those rows written: the table statistics
   (inserted/updated/deleted tuples) are compared before and after.
3. The two assets' hand-over, timed apart: the normalised records stored (JSONB) and read back,
   as the tables asset reads them (`asset_path_seconds`: transform, hand-over and load).
4. Where the first load's time goes, against the same baseline: the load step alone; the CPU of
   building the models only (parse + the source's specific transform: `Event` and the common
   models, no generic step); and every CPU second of the first load, this process's and the
   server backend's (read from /proc), spread over the machine's cores: no parallel schedule of
   that work on this machine can take less.

Usage: nice .venv/bin/python benchmarks/pois.py [--records 100000] [--workers 1] [--repeat 3]
Writes benchmarks/results/pois.json: every run, and the medians of the ratios and timings (the
machine is shared: one run alone says little).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from migrations import upgrade  # noqa: E402
from platform_assets.ops.bulk import gc_paused  # noqa: E402
from platform_assets.pois import load, pipeline, staging  # noqa: E402
from platform_assets.pois.sources import sources  # noqa: E402
from platform_assets.samples.pois.fixtures import changed_copy, synthetic_events  # noqa: E402
from resources.geocoder import GeocoderResource  # noqa: E402
from resources.warehouse import resolve_database_urls  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "pois.json"
BENCH_DB = "fishnet_bench_pois"
TABLES = {
    "poi": (load.POI_COLUMNS, load.POI_TYPES),
    "address": (load.ADDRESS_COLUMNS, load.ADDRESS_TYPES),
    "address_poi": (load.ADDRESS_POI_COLUMNS, load.ADDRESS_POI_TYPES),
    "activity": (load.ACTIVITY_COLUMNS, load.ACTIVITY_TYPES),
    "registered_poi": (load.REGISTERED_COLUMNS, load.REGISTERED_TYPES),
}
STAT_TABLES = (*TABLES, "poi_history")


def store(conn: psycopg.Connection, records: list[dict], day: date) -> None:
    """The raw extract of one day (what the extract asset leaves)."""
    rows = [(r["id"], json.dumps(r, ensure_ascii=False)) for r in records]
    staging.store_raw_extract(conn, "events", day, rows)
    conn.execute("ANALYZE pois.raw_extract")


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def server_cpu(conn: psycopg.Connection) -> float:
    """CPU seconds (user + system) the connection's PostgreSQL backend has used so far.

    Read from /proc, so the server must run on this machine (embedded, or DATABASE_URL on a
    local address); anything else is refused rather than read from an unrelated process.
    """
    host, pid = conn.info.host, conn.info.backend_pid
    proc = Path(f"/proc/{pid}")
    local = host.startswith("/") or host in LOCAL_HOSTS
    if (
        not local
        or not (proc / "comm").exists()
        or (proc / "comm").read_text().strip() != "postgres"
    ):
        raise SystemExit(
            f"benchmarks/pois.py reads the server's CPU from /proc: the server at {host!r} "
            "must run on this machine (embedded, or DATABASE_URL on 127.0.0.1)"
        )
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def measured_connection(libpq: str, spent: list[float]) -> Iterator[psycopg.Connection]:
    """An autocommit connection whose backend's CPU is added to `spent` when it closes."""
    with psycopg.connect(libpq, autocommit=True) as conn:
        try:
            yield conn
        finally:
            spent.append(server_cpu(conn))


def run_once(conn: psycopg.Connection, libpq: str, workers: int) -> tuple[float, dict, dict]:
    """The latest extraction through the two assets' steps; (transform + load seconds, load
    counts, per-step seconds).

    As the assets run: the normalised asset transforms and stores the records (JSONB), the tables
    asset reads them back and loads them. The target's figure is transform + load; the hand-over
    between the two assets (store and read back) is timed apart.
    """
    source = sources()["events"]
    geocoder = GeocoderResource()
    server_started = server_cpu(conn)
    started, cpu_started = time.perf_counter(), time.process_time()
    run = pipeline.transform_extraction(
        conn, source, geocoder.factory(), geocoder.kind(), workers=workers
    )
    transform_seconds = time.perf_counter() - started
    transform_cpu = time.process_time() - cpu_started
    transform_server_cpu = server_cpu(conn) - server_started

    handover_started = time.perf_counter()
    assert run.extraction_date is not None
    staging.store_normalised(conn, "events", run.extraction_date, run.outcome.records)
    stored = time.perf_counter()
    records = staging.read_normalised(conn, "events")
    read = time.perf_counter()

    server_started = server_cpu(conn)
    cpu_started = time.process_time()
    load_backends: list[float] = []  # the CPU of the load's own connections' backends
    result = pipeline.load_source(
        conn,
        "events",
        records,
        run.extraction_date,
        connect=lambda: measured_connection(libpq, load_backends),
    )
    load_seconds = time.perf_counter() - read
    steps = {
        "pending": run.pending,
        "rejected": len(run.outcome.rejected),
        "transform_seconds": round(transform_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        # this process's CPU: what the machine's other load cannot inflate (PostgreSQL aside)
        "transform_cpu_seconds": round(transform_cpu, 3),
        "load_cpu_seconds": round(time.process_time() - cpu_started, 3),
        # the server's CPU for the same steps (reading the extract; COPYs, reference checks)
        "transform_server_cpu_seconds": round(transform_server_cpu, 3),
        "load_server_cpu_seconds": round(server_cpu(conn) - server_started + sum(load_backends), 3),
        # the hand-over between the normalised asset and the tables asset
        "normalised_store_seconds": round(stored - handover_started, 3),
        "normalised_read_seconds": round(read - stored, 3),
        "asset_path_seconds": round(read - started + load_seconds, 3),
    }
    return transform_seconds + load_seconds, result.as_metadata(), steps


def models_only_cpu(conn: psycopg.Connection) -> float:
    """CPU seconds of the least any transform must do: parse the latest extraction's records
    and build the models the issue asks for (the source's `Event`, the common models) with the
    source's specific transform, without any generic `transform_*` step or load."""
    from pydantic_core import from_json

    source = sources()["events"]
    rows = conn.execute(
        "SELECT record::text FROM pois.raw_extract WHERE extraction_date = "
        "(SELECT max(extraction_date) FROM pois.raw_extract)"
    ).fetchall()
    with gc_paused():
        started = time.process_time()
        for (text,) in rows:
            source.transform(from_json(text))
        return time.process_time() - started


def table_writes(conn: psycopg.Connection) -> dict[str, int]:
    """Tuples inserted + updated + deleted so far, per table (pg_stat, flushed first)."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    rows = conn.execute(
        "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
        "WHERE schemaname = 'pois' AND relname = ANY(%s)",
        (list(STAT_TABLES),),
    ).fetchall()
    return dict(rows)


def copy_baseline(conn: psycopg.Connection) -> tuple[float, float, float]:
    """Binary COPY of the loaded rows into empty copies of the tables; (seconds, client CPU
    seconds, server CPU seconds)."""
    conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
    conn.execute("CREATE SCHEMA bench")
    rows = {}
    for table, (columns, _) in TABLES.items():
        conn.execute(f"CREATE TABLE bench.{table} (LIKE pois.{table} INCLUDING ALL)")
        rows[table] = conn.execute(f"SELECT {', '.join(columns)} FROM pois.{table}").fetchall()
    server_started = server_cpu(conn)
    started, cpu_started = time.perf_counter(), time.process_time()
    with conn.transaction():
        for table, (columns, types) in TABLES.items():
            load._copy(conn, f"bench.{table}", columns, types, rows[table])
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    server = server_cpu(conn) - server_started
    conn.execute("DROP SCHEMA bench CASCADE")
    return seconds, cpu, server


def bench(count: int, workers: int, seed: int = 11) -> dict:
    server = resolve_database_urls()
    with psycopg.connect(server.libpq, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    urls = server.for_database(BENCH_DB)
    upgrade(urls)
    first_records = synthetic_events(count, seed=seed)
    rng = random.Random(3 if seed == 11 else seed + 1)  # the default's draws unchanged
    picked = rng.sample(range(count), int(count * 0.015))
    changed = set(picked[: int(count * 0.01)])
    removed = set(picked[int(count * 0.01) :])
    second_records = [
        changed_copy(r) if i in changed else r
        for i, r in enumerate(first_records)
        if i not in removed
    ]
    report: dict = {}
    try:
        with psycopg.connect(urls.libpq, autocommit=True) as conn:
            store(conn, first_records, date(2027, 1, 1))
            first_seconds, first_counts, first_steps = run_once(conn, urls.libpq, workers)
            conn.execute("ANALYZE")
            copy_seconds, copy_cpu, copy_server_cpu = copy_baseline(conn)
            models_cpu = models_only_cpu(conn)
            store(conn, second_records, date(2027, 1, 2))
            before = table_writes(conn)
            second_seconds, second_counts, second_steps = run_once(conn, urls.libpq, workers)
            after = table_writes(conn)
        writes = {t: after.get(t, 0) - before.get(t, 0) for t in STAT_TABLES}
        report |= {
            "copy_baseline_seconds": round(copy_seconds, 3),
            "copy_baseline_cpu_seconds": round(copy_cpu, 3),
            "copy_baseline_server_cpu_seconds": round(copy_server_cpu, 3),
            "first_load": {
                "seconds": round(first_seconds, 3),
                "records_per_second": round(count / first_seconds),
                **first_steps,
                "counts": first_counts,
            },
            "ratio_first_load_to_copy": round(first_seconds / copy_seconds, 2),
            "ratio_first_load_only_to_copy": round(first_steps["load_seconds"] / copy_seconds, 2),
            "ratio_first_asset_path_to_copy": round(
                first_steps["asset_path_seconds"] / copy_seconds, 2
            ),
            "models_only_cpu_seconds": round(models_cpu, 3),
            "ratio_models_only_cpu_to_copy": round(models_cpu / copy_seconds, 2),
            # the CPU the first load used (this process and the server), spread ideally over
            # every core of the machine, against the COPY's time: what no parallel schedule of
            # the same work on this machine can beat
            "ratio_first_load_cpu_per_core_to_copy": round(
                cpu_per_core(first_steps) / copy_seconds, 2
            ),
            "second_run": {
                "changed": len(changed),
                "removed": len(removed),
                "seconds": round(second_seconds, 3),
                **second_steps,
                "counts": second_counts,
                "tuples_written_per_table": writes,
            },
            "ratio_second_to_first": round(second_seconds / first_seconds, 3),
        }
    finally:
        with psycopg.connect(server.libpq, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    return report


def cpu_per_core(steps: dict) -> float:
    """A run's CPU seconds (client and server, transform and load) over the machine's cores."""
    keys = ("transform_cpu_seconds", "load_cpu_seconds")
    keys += ("transform_server_cpu_seconds", "load_server_cpu_seconds")
    return sum(steps[key] for key in keys) / (os.cpu_count() or 1)


def medians(runs: list[dict]) -> dict:
    """Median ratios and timings over repeated runs."""

    def median(path: tuple[str, ...]) -> float:
        values = []
        for run in runs:
            value = run
            for key in path:
                value = value[key]
            values.append(value)
        return round(statistics.median(values), 3)

    return {
        "runs": len(runs),
        "copy_baseline_seconds": median(("copy_baseline_seconds",)),
        "first_load_seconds": median(("first_load", "seconds")),
        "first_transform_seconds": median(("first_load", "transform_seconds")),
        "first_load_only_seconds": median(("first_load", "load_seconds")),
        "first_transform_cpu_seconds": median(("first_load", "transform_cpu_seconds")),
        "first_load_cpu_seconds": median(("first_load", "load_cpu_seconds")),
        "first_transform_server_cpu_seconds": median(
            ("first_load", "transform_server_cpu_seconds")
        ),
        "first_load_server_cpu_seconds": median(("first_load", "load_server_cpu_seconds")),
        "copy_baseline_cpu_seconds": median(("copy_baseline_cpu_seconds",)),
        "copy_baseline_server_cpu_seconds": median(("copy_baseline_server_cpu_seconds",)),
        "second_run_seconds": median(("second_run", "seconds")),
        "ratio_first_load_to_copy": median(("ratio_first_load_to_copy",)),
        "ratio_first_load_cpu_per_core_to_copy": median(("ratio_first_load_cpu_per_core_to_copy",)),
        "ratio_first_load_only_to_copy": median(("ratio_first_load_only_to_copy",)),
        "first_asset_path_seconds": median(("first_load", "asset_path_seconds")),
        "ratio_first_asset_path_to_copy": median(("ratio_first_asset_path_to_copy",)),
        "models_only_cpu_seconds": median(("models_only_cpu_seconds",)),
        "ratio_models_only_cpu_to_copy": median(("ratio_models_only_cpu_to_copy",)),
        "ratio_second_to_first": median(("ratio_second_to_first",)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="transform processes (pool if > 1)")
    parser.add_argument("--repeat", type=int, default=3, help="whole runs; medians reported")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--seed",
        type=int,
        default=11,
        help="records drawn from this seed (another one measures on inputs never measured before)",
    )
    args = parser.parse_args()
    runs = []
    for number in range(args.repeat):
        loadavg = os.getloadavg()
        runs.append({"loadavg_before": loadavg, **bench(args.records, args.workers, args.seed)})
        print(f"run {number + 1}: {json.dumps(runs[-1])}", flush=True)
    report = {
        "benchmark": "pois",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "records": args.records,
        "workers": args.workers,
        "seed": args.seed,
        "target_ratio_first_load_to_copy": 3.0,
        "target_ratio_second_to_first": 0.3,
        "median": medians(runs),
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["median"], indent=2))


if __name__ == "__main__":
    main()
