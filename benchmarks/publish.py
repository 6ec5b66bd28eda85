"""Publishing throughput: 1,000,000 rows to a local endpoint against serialising them to JSON.

Baseline (same run, same rows): the rows streamed from PostgreSQL in chunks of 10,000, and only
`json.dumps` of each chunk (as dicts keyed by column, timestamps as text) timed: the rate of
serialising the rows to JSON alone. Publication: `publish_json` (server-side cursor, record ids,
JSON built by PostgreSQL, batches POSTed while the next is read) to the fake upsert endpoint
running in another process (tests/fakes/publish_server.py, count only), timed end to end.
Target: publication rate >= 0.5 x baseline rate, with memory bounded by a chunk (peak RSS is
reported; the table is never held in memory).

Usage: nice .venv/bin/python benchmarks/publish.py [--rows 1000000]
Writes benchmarks/results/publish.json. Needs DATABASE_URL (or starts the embedded server).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from platform_assets.ops.publish import CHUNK_ROWS, publish_json  # noqa: E402
from resources.publisher import HttpBatchSender  # noqa: E402
from resources.warehouse import resolve_database_urls  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "publish.json"
BENCH_DB = "fishnet_bench_publish"
TABLE = "public.bench_positions"
TARGET_RATIO = 0.5


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(rows: int) -> str:
    """A fresh database with `rows` position-like rows; its libpq URL."""
    server = resolve_database_urls()
    with psycopg.connect(server.libpq, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    url = server.for_database(BENCH_DB).libpq
    with psycopg.connect(url) as conn:
        conn.execute(
            f"""
            CREATE TABLE {TABLE} (
                id bigint PRIMARY KEY, vessel_cfr text NOT NULL, latitude double precision,
                longitude double precision, speed real, course real,
                emitted_at timestamptz NOT NULL, at_port boolean
            )"""
        )
        conn.execute(
            f"""
            INSERT INTO {TABLE}
            SELECT n, 'FRA' || lpad((n %% 5000)::text, 9, '0'), 43 + (n %% 1000) / 123.0,
                   -5 + (n %% 777) / 99.0, (n %% 140) / 10.0, (n %% 360)::real,
                   timestamptz '2026-11-01 00:00+00' + n * interval '7 seconds', n %% 9 = 0
            FROM generate_series(1, %s) AS n""",
            (rows,),
        )
        conn.execute(f"ANALYZE {TABLE}")
    return url


def bench_baseline(url: str) -> dict:
    """Seconds spent only in json.dumps of the streamed chunks."""
    serialising = 0.0
    rows = size = 0
    with psycopg.connect(url) as conn, conn.cursor(name="baseline") as cursor:
        cursor.itersize = CHUNK_ROWS
        cursor.execute(f"SELECT * FROM {TABLE}")
        columns: list[str] | None = None
        while chunk := cursor.fetchmany(CHUNK_ROWS):
            if columns is None:
                columns = [d.name for d in cursor.description or []]
            started = time.perf_counter()
            body = json.dumps([dict(zip(columns, row, strict=True)) for row in chunk], default=str)
            payload = body.encode()
            serialising += time.perf_counter() - started
            rows += len(chunk)
            size += len(payload)
    return {
        "rows": rows,
        "seconds": serialising,
        "rows_per_second": rows / serialising,
        "bytes": size,
    }


def bench_publish(url: str) -> dict:
    """End-to-end publication to the fake endpoint in its own process."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.publish_server", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        rss_before = _maxrss_mb()
        with psycopg.connect(url) as conn, HttpBatchSender(endpoint) as sender:
            summary = publish_json(conn, TABLE, sender)
        counters = httpx.get(endpoint).json()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {
        "rows": summary.rows,
        "seconds": summary.seconds,
        "rows_per_second": summary.rows / summary.seconds,
        "bytes": summary.bytes,
        "chunks": len(summary.chunks),
        "max_chunk_rows": max(c.rows for c in summary.chunks),
        "server_received_rows": counters["received_rows"],
        "server_requests": counters["requests"],
        "peak_rss_mb_before": round(rss_before, 1),
        "peak_rss_mb_after": round(_maxrss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    url = prepare(args.rows)
    publish = bench_publish(url)  # first, so its peak RSS is not the baseline's
    baseline = bench_baseline(url)
    ratio = publish["rows_per_second"] / baseline["rows_per_second"]
    result = {
        "benchmark": "publish",
        "rows": args.rows,
        "chunk_rows": CHUNK_ROWS,
        "baseline_json_dumps": baseline,
        "publish_to_local_endpoint": publish,
        "ratio_publish_to_baseline": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO and publish["server_received_rows"] == args.rows,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    server = resolve_database_urls()
    with psycopg.connect(server.libpq, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


if __name__ == "__main__":
    main()
