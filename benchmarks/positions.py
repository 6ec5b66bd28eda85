"""Positions storage throughput, as ratios to a plain binary COPY measured in the same run.

0. Parse: ``naf.parse_lines`` on 200,000 of the load's lines against the bare loop
   ``[dict(p.split('/', 1) for p in l.rstrip()[6:-6].split('//') if '/' in p) for l in lines]``
   (rate ratio, target >= 0.5).
1. Load: N positions (T tracks, a few days) written as a NAF file, then parse + enrich + load
   through the ingest op's code path (``ingestion.ingest_files``: one ADBC connection, the
   anchorages read, blocks read and parsed one ahead in a thread, quarantine, track state,
   binary COPY into the table, the catalog item), timed whole, for the generator's file (track
   after track) and for the same lines in time order, as a real feed sends them (``load`` and
   ``load_time_ordered``). Baseline: binary COPY (ADBC, from Arrow, in the 32k-row batches of
   ``resources.adbc_copy`` like every COPY here) of the same parsed rows into an unindexed,
   unpartitioned table of the same columns. Target <= 2x. ``table_copy_ratio``: the same
   baseline's ratio for a COPY of the stored rows, enriched, into the real table (day partitions,
   unique natural key, BRIN), without parsing or enrichment: what the table alone costs.
2. Incremental: with B positions stored, one more hour of the T tracks (one file). Target
   <= 1.5x the COPY time of the new rows + 1 s.
3. Last positions over the B stored: ``store.refresh_last_positions``. Target <= 5x the COPY
   time of 1M rows (the COPY time of the load's rows, scaled to 1M).
4. Peak resident memory of the process (target < 2 GB at B = 10M).

Each figure is the median of ``--repeats`` runs (3), each ratio against a COPY measured in the
same repeat; the machine has 2 cores shared with others, so look at ``loadavg_*`` too.

Usage: nice .venv/bin/python benchmarks/positions.py [--quick] [--stored B] [--repeats R]
   full: N = 1,000,000, T = 5,000, B = 10,000,000; quick: N = 100,000, T = 500, B = 1,000,000.
Writes benchmarks/results/positions.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from migrations import upgrade  # noqa: E402
from platform_assets.positions import naf, store  # noqa: E402
from platform_assets.positions.inbox import inbox_file_at  # noqa: E402
from platform_assets.positions.ingestion import ingest_files  # noqa: E402
from resources.adbc_copy import adbc_copy  # noqa: E402
from resources.warehouse import WarehouseResource, resolve_database_urls  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "positions.json"
BENCH_DB = "fishnet_bench_positions"
START = datetime(2024, 5, 1, tzinfo=UTC)
PORTS = [(47.6, -3.3), (43.3, 5.35), (51.05, 2.35)]


def naf_lines(tracks: int, start: datetime, minutes: int, step: int, seed: int) -> list[str]:
    """``tracks`` vessels emitting every ``step`` minutes for ``minutes`` from ``start``;
    each leaves a port, fishes at 3 kn and comes back (time order inside a track)."""
    rng = random.Random(seed)
    lines = []
    for n in range(tracks):
        port = PORTS[n % len(PORTS)]
        heading = rng.uniform(0, 2 * math.pi)
        offset = n % step
        for k in range((minutes - offset) // step):
            at = start + timedelta(minutes=offset + k * step)
            cycle = (at - START).total_seconds() / 3600 % 24
            distance = min(cycle, 24 - cycle) * 0.08  # degrees from port: out then back
            lat = port[0] + distance * math.cos(heading) + rng.uniform(-1e-4, 1e-4)
            lon = port[1] + distance * math.sin(heading) + rng.uniform(-1e-4, 1e-4)
            speed = 0 if distance < 0.01 else 30 if distance > 0.5 else 100
            lines.append(
                f"//SR//TM/POS//IR/FRA{n:09d}//RC/F{n:05d}//XR/GV{n:06d}//FS/FRA"
                f"//DA/{at:%Y%m%d}//TI/{at:%H%M}//LT/{lat:.5f}//LG/{lon:.5f}"
                f"//SP/{speed}//CO/{rng.randrange(360)}//ER//"
            )
    return lines


def write_file(directory: Path, name: str, lines: list[str]) -> Path:
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


def fresh_database(name: str) -> WarehouseResource:
    server = resolve_database_urls()
    with psycopg.connect(server.libpq, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    urls = server.for_database(name)
    upgrade(urls)
    warehouse = WarehouseResource(database_url=urls.libpq)
    with warehouse.connect() as conn:
        conn.execute(
            "INSERT INTO reference.anchorages (h3, port_locode, distance_m, source) "
            "SELECT unnest(%s::text[]), 'X', 0, 'port'",
            (anchorage_cells(),),
        )
        conn.commit()
    return warehouse


def anchorage_cells() -> list[str]:
    import h3

    return sorted(
        {c for lat, lon in PORTS for c in h3.grid_disk(h3.latlng_to_cell(lat, lon, 9), 3)}
    )


def copy_baseline(warehouse: WarehouseResource, lines: list[str]) -> tuple[float, int]:
    """Seconds to binary-COPY the parsed rows into a plain table (no index, no partition)."""
    frame, _ = naf.parse_lines(lines)
    frame = store.normalise_parsed(frame)
    frame["id"] = range(len(frame))
    frame["track_id"] = 0
    with warehouse.adbc() as conn:
        cur = conn.cursor()
        cur.execute("DROP TABLE IF EXISTS public.bench_copy")
        cur.execute(
            "CREATE TABLE public.bench_copy AS SELECT * FROM positions.positions WITH NO DATA"
        )
        conn.commit()
        table = pa.Table.from_pandas(frame[store.POSITION_COLUMNS[:-6]], preserve_index=False)
        started = time.perf_counter()
        adbc_copy(cur, "bench_copy", table, db_schema_name="public")
        conn.commit()
        seconds = time.perf_counter() - started
        cur.execute("DROP TABLE public.bench_copy")
        conn.commit()
        cur.close()
    return seconds, len(frame)


def ingest(warehouse: WarehouseResource, path: Path) -> tuple[float, store.IngestResult]:
    inbox_file = inbox_file_at(path)  # hashing the file is the sensor's work, not the run's
    started = time.perf_counter()
    totals = ingest_files(warehouse, [inbox_file], None)
    return time.perf_counter() - started, totals.result


def time_ordered(lines: list[str]) -> list[str]:
    """The same lines in time order (DA then TI; a track's lines keep their order)."""

    def instant(line: str) -> str:
        day = line.index("//DA/") + 5
        minute = line.index("//TI/") + 5
        return line[day : day + 8] + line[minute : minute + 4]

    return sorted(lines, key=instant)


def measure_load(
    lines: list[str], path: Path, repeats: int
) -> tuple[dict, WarehouseResource, store.IngestResult]:
    """The load of ``path`` (the NAF file of ``lines``) on a fresh database against the COPY of
    its rows, ``repeats`` times: the figures, the last database and its ingest result."""
    loads = []
    for _ in range(repeats):
        warehouse = fresh_database(BENCH_DB)
        copy_s, rows = copy_baseline(warehouse, lines)
        load_s, result = ingest(warehouse, path)
        floor_s = copy_into_positions(warehouse)
        loads.append(
            {
                "copy_seconds": copy_s,
                "ingest_seconds": load_s,
                "ratio": load_s / copy_s,
                "table_copy_ratio": floor_s / copy_s,
            }
        )
    figures = {
        "rows": rows,
        "copy_seconds": round(_median([r["copy_seconds"] for r in loads]), 3),
        "ingest_seconds": round(_median([r["ingest_seconds"] for r in loads]), 3),
        "ratio_to_copy": round(_median([r["ratio"] for r in loads]), 2),
        "ratios": [round(r["ratio"], 2) for r in loads],
        "inserted": result.load.inserted,
        "target_ratio": 2.0,
        "table_copy_ratio": round(_median([r["table_copy_ratio"] for r in loads]), 2),
    }
    return figures, warehouse, result


def copy_into_positions(warehouse: WarehouseResource) -> float:
    """Seconds to binary-COPY the stored rows, enriched, back into ``positions.positions``
    (emptied first; day partitions, unique natural key and BRIN index as the loader meets them;
    rows in the loader's order): what the table alone costs, without parsing or enrichment."""
    with warehouse.adbc() as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT * FROM positions.positions "
            "ORDER BY date_trunc('day', datetime_utc AT TIME ZONE 'UTC'), track_id, datetime_utc, id"
        )
        rows = cur.fetch_arrow_table()
        cur.execute("TRUNCATE positions.positions")
        conn.commit()
        started = time.perf_counter()
        adbc_copy(cur, "positions", rows, db_schema_name="positions")
        conn.commit()
        seconds = time.perf_counter() - started
        cur.close()
    return seconds


def _median(values: list[float]) -> float:
    return statistics.median(values)


def parse_rate(lines: list[str], repeats: int) -> dict:
    """Seconds of ``naf.parse_lines`` and of the bare split loop on the same lines (medians)."""
    sample = lines[:200_000]
    naf.parse_lines(sample[:1_000])  # pyarrow's one-time initialisation
    bare, ours = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        [dict(p.split("/", 1) for p in s.rstrip()[6:-6].split("//") if "/" in p) for s in sample]
        bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        naf.parse_lines(sample)
        ours.append(time.perf_counter() - started)
    return {
        "lines": len(sample),
        "bare_split_seconds": round(_median(bare), 3),
        "parse_lines_seconds": round(_median(ours), 3),
        "rate_ratio": round(_median(bare) / _median(ours), 2),
        "target_ratio": 0.5,
    }


def run(
    positions: int, tracks: int, stored: int, workdir: Path, repeats: int = 3, seed: int = 1
) -> dict:
    step = 10
    minutes = positions // tracks * step
    report: dict = {
        "positions": positions,
        "tracks": tracks,
        "stored_for_incremental": stored,
        "repeats": repeats,
        "seed": seed,
    }

    # 1. load, on a fresh database each time (the first file of a deployment: new tracks); a
    # real feed is in time order (every block holds the whole fleet), the generator's file in
    # track order: both are measured, the time-ordered one first
    lines = naf_lines(tracks, START, minutes, step, seed=seed)
    report["parse"] = parse_rate(lines, repeats)
    timed = time_ordered(lines)
    report["load_time_ordered"], _, _ = measure_load(
        timed, write_file(workdir, "load-by-time.naf", timed), repeats
    )
    del timed
    report["load"], warehouse, result = measure_load(
        lines, write_file(workdir, "load.naf", lines), repeats
    )
    rows = report["load"]["rows"]
    copy_1m = report["load"]["copy_seconds"] * 1_000_000 / rows
    del lines

    # 2. incremental: grow the last database to `stored`, then one more hour, `repeats` times
    total = result.load.inserted
    at = START + timedelta(minutes=minutes)
    number = 0
    grow_started = time.perf_counter()
    while total < stored:
        number += 1
        chunk = naf_lines(tracks, at, minutes, step, seed=seed + number)
        part = write_file(workdir, f"base-{number}.naf", chunk)
        del chunk
        _, grown = ingest(warehouse, part)
        part.unlink()
        total += grown.load.inserted
        at += timedelta(minutes=minutes)
        print(f"stored {total:,} ({time.perf_counter() - grow_started:.0f} s)", flush=True)
    hours = []
    for k in range(repeats):
        hour = naf_lines(tracks, at, 60, step, seed=seed + 998 + k)
        hour_path = write_file(workdir, f"hour-{k}.naf", hour)
        hour_copy_s, hour_rows = copy_baseline(warehouse, hour)
        hour_s, hour_result = ingest(warehouse, hour_path)
        total += hour_result.load.inserted
        at += timedelta(minutes=60)
        hours.append((hour_s, hour_copy_s, hour_rows))
    hour_s = _median([h[0] for h in hours])
    hour_copy_s = _median([h[1] for h in hours])
    report["incremental"] = {
        "stored_before": total - sum(h[2] for h in hours),
        "new_rows": hours[0][2],
        "copy_seconds": round(hour_copy_s, 3),
        "ingest_seconds": round(hour_s, 3),
        "ingest_seconds_each": [round(h[0], 3) for h in hours],
        "budget_seconds": round(1.5 * hour_copy_s + 1.0, 3),
        "within_budget": hour_s <= 1.5 * hour_copy_s + 1.0,
    }

    # 3. last positions over everything stored (the first refresh, then the usual ones)
    now = at + timedelta(minutes=1)
    lasts = []
    for _ in range(repeats):
        started = time.perf_counter()
        with warehouse.adbc() as conn:
            count = store.refresh_last_positions(conn, now)
            conn.commit()
        lasts.append(time.perf_counter() - started)
    last_s = _median(lasts)
    report["last_positions"] = {
        "stored": total,
        "rows": count,
        "seconds": round(last_s, 3),
        "seconds_each": [round(x, 3) for x in lasts],
        "copy_1m_rows_seconds": round(copy_1m, 3),
        "ratio_to_copy_1m": round(last_s / copy_1m, 2),
        "target_ratio": 5.0,
    }
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    server = resolve_database_urls()
    with psycopg.connect(server.libpq, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k positions, 1M stored")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--stored", type=int, default=None, help="positions stored before the incremental run"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="tracks drawn from this seed (another one measures on inputs never measured before)",
    )
    args = parser.parse_args()
    sizes = (100_000, 500, 1_000_000) if args.quick else (1_000_000, 5_000, 10_000_000)
    if args.stored:
        sizes = (sizes[0], sizes[1], args.stored)
    report: dict = {
        "benchmark": "positions",
        "mode": "quick" if args.quick else "full",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
    }
    with tempfile.TemporaryDirectory() as workdir:
        report.update(run(*sizes, Path(workdir), repeats=args.repeats, seed=args.seed))
    report["loadavg_after"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
