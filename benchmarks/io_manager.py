"""IO manager throughput against ADBC (the practical limit) and pandas `to_sql`, in one run.

1,000,000 positions-shaped rows are written and read back through the IO manager's functions; the
same frame goes through ADBC `adbc_ingest` / `fetch_arrow_table`, and `to_sql` on 100,000 rows
(extrapolated). Results: benchmarks/results/io_manager.json. Usage:

    .venv/bin/python benchmarks/io_manager.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resources.adbc_copy import adbc_copy  # noqa: E402
from resources.table_io import TableRef, read_frame, write_frame  # noqa: E402
from resources.warehouse import WarehouseResource, resolve_database_urls  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "io_manager.json"
BENCH_DB = "fishnet_bench"
DDL = """
DROP TABLE IF EXISTS bench.positions;
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE bench.positions (
    id bigint NOT NULL,
    vessel_id text NOT NULL,
    latitude double precision,
    longitude double precision,
    speed double precision,
    course double precision,
    datetime_utc timestamptz NOT NULL,
    is_at_port boolean
);
"""


def positions_frame(rows: int, seed: int = 42) -> pd.DataFrame:
    """Positions-shaped rows: ids, vessel ids, coordinates, speed, course, time, a flag."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "vessel_id": pd.array([f"FRA{v:09d}" for v in rng.integers(0, 5000, rows)], dtype=str),
            "latitude": rng.uniform(40, 60, rows),
            "longitude": rng.uniform(-10, 10, rows),
            "speed": rng.uniform(0, 15, rows),
            "course": rng.uniform(0, 360, rows),
            "datetime_utc": start + pd.to_timedelta(rng.integers(0, 86400 * 30, rows), unit="s"),
            "is_at_port": rng.random(rows) < 0.2,
        }
    )


def timed(fn: Callable[[], object], repeat: int, before: Callable[[], None] | None = None) -> float:
    """Median seconds of `repeat` runs (`before` runs untimed ahead of each)."""
    samples = []
    for _ in range(repeat):
        if before:
            before()
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--to-sql-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    server = resolve_database_urls()
    with psycopg.connect(server.libpq, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    urls = server.for_database(BENCH_DB)
    warehouse = WarehouseResource(database_url=urls.libpq)
    table = TableRef("bench", "positions")

    def reset() -> None:
        with warehouse.connect() as conn:
            conn.execute(DDL)

    frame = positions_frame(args.rows)
    reset()

    def adbc_write() -> None:
        data = pa.Table.from_pandas(frame, preserve_index=False)
        with warehouse.adbc() as conn:
            cur = conn.cursor()
            adbc_copy(cur, "positions", data, db_schema_name="bench")
            conn.commit()

    def adbc_read() -> None:
        with warehouse.adbc() as conn:
            cur = conn.cursor()
            cur.execute("SELECT * FROM bench.positions")
            assert cur.fetch_arrow_table().num_rows == args.rows

    def io_write() -> None:
        write_frame(warehouse, frame, table, "replace")

    def io_read() -> None:
        assert len(read_frame(warehouse, table)) == args.rows

    results: dict[str, float] = {}
    results["adbc_ingest_s"] = timed(adbc_write, args.repeat, before=reset)
    results["io_manager_write_s"] = timed(io_write, args.repeat, before=reset)
    results["adbc_fetch_arrow_s"] = timed(adbc_read, args.repeat)
    results["io_manager_read_s"] = timed(io_read, args.repeat)

    small = frame.head(args.to_sql_rows)
    engine = sa.create_engine(urls.sqlalchemy)

    def to_sql() -> None:
        small.to_sql("positions", engine, schema="bench", if_exists="append", index=False)

    results["to_sql_s_for_sample"] = timed(to_sql, 1, before=reset)
    engine.dispose()
    results["to_sql_s_extrapolated"] = results["to_sql_s_for_sample"] * args.rows / len(small)

    report = {
        "benchmark": "io_manager",
        "rows": args.rows,
        "to_sql_rows": len(small),
        "repeat": args.repeat,
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "seconds": {k: round(v, 3) for k, v in results.items()},
        "ratios": {
            "write_vs_adbc_ingest": round(
                results["io_manager_write_s"] / results["adbc_ingest_s"], 3
            ),
            "read_vs_adbc_fetch_arrow": round(
                results["io_manager_read_s"] / results["adbc_fetch_arrow_s"], 3
            ),
            "to_sql_vs_io_manager_write": round(
                results["to_sql_s_extrapolated"] / results["io_manager_write_s"], 1
            ),
        },
        "targets": {"write_vs_adbc_ingest": 1.5, "read_vs_adbc_fetch_arrow": 1.5},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    with psycopg.connect(server.libpq, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


if __name__ == "__main__":
    main()
