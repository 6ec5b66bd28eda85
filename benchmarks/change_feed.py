"""Change feed end to end: lost events, double handling and delay, with a consumer killed meanwhile.

Writers (processes) insert inputs in transactions of 1-50 rows; some are held open for a random
moment so commits go out of id order, some are rolled back. A consumer process evaluates the real
change-feed sensor (`sensors.change_feed.change_feed_sensor`, through `build_sensor_context`) the way
the daemon does: a tick, then the next one at the daemon's next loop iteration (every `--pause`
seconds, 5 s in Dagster 1.13: `MIN_INTERVAL_LOOP_TIME`). After each tick it appends the run request
to a log and then stores its cursor in a file; the benchmark SIGKILLs it a few times and restarts it,
and two incarnations of it die on purpose in the windows that matter: once right after evaluating
(the batch is recorded in the database, nothing stored: the next tick must re-emit it) and once
after logging the run request but before storing the cursor (the same run key comes again).

Then: events lost (committed inputs no run request covers; must be 0), events handled twice (in
two distinct run keys after de-duplicating by run key as Dagster does; must be 0), and the delay
from a writer's commit to the run request (p50, p95, max), for all events and for those committed
while the consumer was up (steady state), split by whether a tick was in flight at commit time.

Two scenarios: `continuous` (the issue's 10,000 inputs from 4 writers, a commit every ~0.3 s) and
`sparse` (commits further apart than the daemon's loop period, as a harvest every few minutes
would make). Under continuous load a tick always finds work as it starts and returns at once, so
the delay is bounded below by the daemon's loop: ~half its period on average. Results:
benchmarks/results/change_feed.json. Usage:

    .venv/bin/python benchmarks/change_feed.py [--scenario all|continuous|sparse] [--pause 5]

Runs on the server of resolve_database_urls() (embedded unless DATABASE_URL), in a dedicated
database created, migrated and dropped here. Never run as a test.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import multiprocessing
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resources.warehouse import DatabaseUrls, resolve_database_urls  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "change_feed.json"
BENCH_DB = "fishnet_bench_change_feed"
CONSUMER = "bench_inputs_sensor"


# --- writers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriterConfig:
    """How one writer behaves."""

    database_url: str
    rows: int
    seed: int
    max_rows: int
    think_min_s: float
    think_max_s: float
    hold_prob: float
    hold_max_s: float
    abort_prob: float
    out: str


def writer_main(config: WriterConfig) -> None:
    """Insert `rows` committed inputs; log each commit (ids, time) and each rollback."""
    rng = random.Random(config.seed)
    done = 0
    serial = 0
    with psycopg.connect(config.database_url) as conn, open(config.out, "w") as log:
        while done < config.rows:
            size = min(rng.randint(1, config.max_rows), config.rows - done)
            names = [f"bench-{config.seed}-{serial + i}" for i in range(size)]
            serial += size
            ids = [
                r[0]
                for r in conn.execute(
                    "INSERT INTO processing.input (product_type, catalogue_id, name, source) "
                    "SELECT 'S2MSI2A', n, n, 'catalogue' FROM unnest(%s::text[]) AS n RETURNING id",
                    (names,),
                ).fetchall()
            ]
            if rng.random() < config.hold_prob:
                time.sleep(rng.uniform(0, config.hold_max_s))  # others commit meanwhile
            if rng.random() < config.abort_prob:
                conn.rollback()
                log.write(json.dumps({"aborted": ids}) + "\n")
            else:
                conn.commit()
                log.write(json.dumps({"ids": ids, "commit": time.time()}) + "\n")
                done += size
            log.flush()
            time.sleep(rng.uniform(config.think_min_s, config.think_max_s))


# --- the consumer: the sensor, ticked like the daemon ticks it -----------------------------------


def consumer_main(args: argparse.Namespace) -> None:
    """Tick the sensor on the daemon's loop; log ticks and run requests, store the cursor."""
    from dagster import SensorResult, build_sensor_context, job, op

    from resources.warehouse import WarehouseResource
    from sensors.change_feed import BATCH_TAG, change_feed_sensor

    @op
    def noop() -> None:
        """Stands for the orchestrator."""

    @job(name="bench_orchestrator_job")
    def bench_job() -> None:
        noop()

    sensor = change_feed_sensor(
        CONSUMER, ["processing.input"], ["INSERT"], job=bench_job, wait_seconds=args.wait
    )
    warehouse = WarehouseResource(database_url=args.database_url)
    state = Path(args.state)
    cursor_file = state / "cursor.json"
    requested_ticks = 0
    anchor = time.time()  # the daemon's loop starts when the daemon starts
    (state / f"ready-{os.getpid()}").touch()  # code loaded: the benchmark may start writing
    with open(state / "requests.jsonl", "a") as requests, open(state / "ticks.jsonl", "a") as ticks:
        while True:
            cursor = cursor_file.read_text() if cursor_file.exists() else None
            started = time.time()
            with build_sensor_context(cursor=cursor, resources={"warehouse": warehouse}) as context:
                result = sensor(context)
            assert isinstance(result, SensorResult)
            ended = time.time()
            run_requests = list(result.run_requests or [])
            run_keys = [r.run_key for r in run_requests]
            tick = {"pid": os.getpid(), "start": started, "end": ended, "run_keys": run_keys}
            ticks.write(json.dumps(tick) + "\n")
            ticks.flush()
            requested_ticks += bool(run_requests)
            crash_now = bool(run_requests) and requested_ticks == args.crash_after
            if crash_now and args.crash_point == "evaluated":
                os._exit(70)  # batch recorded, nothing stored: the next tick must re-emit it
            for request in run_requests:
                record = {"run_key": request.run_key, "batch_id": int(request.tags[BATCH_TAG])}
                requests.write(json.dumps({**record, "at": ended, "pid": os.getpid()}) + "\n")
            requests.flush()
            os.fsync(requests.fileno())
            if crash_now and args.crash_point == "requested":
                os._exit(71)  # run requested, cursor not stored: the same run key comes again
            if result.cursor is not None:
                tmp = cursor_file.with_suffix(".tmp")
                tmp.write_text(result.cursor)
                os.replace(tmp, cursor_file)
            # the next tick starts at the daemon loop's next iteration
            now = time.time()
            next_iteration = anchor + math.ceil((now - anchor) / args.pause) * args.pause
            time.sleep(max(0.0, next_iteration - now))


# --- orchestration and analysis ------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def _summary(values: list[float]) -> dict[str, float | int]:
    return {
        "count": len(values),
        "p50_s": round(_percentile(values, 0.50), 3),
        "p95_s": round(_percentile(values, 0.95), 3),
        "p99_s": round(_percentile(values, 0.99), 3),
        "max_s": round(max(values), 3) if values else float("nan"),
        "mean_s": round(statistics.fmean(values), 3) if values else float("nan"),
    }


class Consumer:
    """The consumer subprocess, with kill and restart."""

    def __init__(self, args: argparse.Namespace, database_url: str, state: Path) -> None:
        self.argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "consumer",
            "--database-url",
            database_url,
            "--state",
            str(state),
            "--pause",
            str(args.pause),
            "--wait",
            str(args.wait),
        ]
        # incarnation k dies on purpose as planned[k] says (point, at its n-th run request)
        self.planned = [("evaluated", 2), ("requested", 2)]
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.self_crashes = 0
        self.restarts = 0
        self.lock = threading.Lock()

    def start(self) -> None:
        self.plan = self.planned.pop(0) if self.planned else ("none", 0)
        point, after = self.plan
        crash = ["--crash-point", point, "--crash-after", str(after)]
        self.process = subprocess.Popen([*self.argv, *crash])

    def kill(self) -> None:
        with self.lock:
            if self.process and self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()
                self.kills += 1
                if self.plan[0] != "none":  # killed before its planned crash: the next one has it
                    self.planned.insert(0, self.plan)

    def ensure_running(self, restart_delay: float) -> None:
        """Restart after a crash (the daemon's supervisor would)."""
        with self.lock:
            if self.process is not None and self.process.poll() is not None:
                if self.process.returncode in (70, 71):
                    self.self_crashes += 1
                time.sleep(restart_delay)
                self.restarts += 1
                self.start()

    def stop(self) -> None:
        with self.lock:
            if self.process and self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()


SCENARIOS: dict[str, dict[str, Any]] = {
    # the load: 10,000 inputs from 4 writers, a commit every ~0.3 s overall
    "continuous": {"inputs": 10_000, "writers": 4, "think_min": 0.0, "think_max": 2.0, "kills": 3},
    # commits further apart than the daemon's loop period: what a tick waiting on LISTEN buys
    "sparse": {"inputs": 600, "writers": 2, "think_min": 12.0, "think_max": 30.0, "kills": 1},
}
SCENARIO_KEYS = ("inputs", "writers", "think_min", "think_max", "kills")


def run(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    """One scenario in a fresh, migrated database."""
    from migrations import upgrade

    server = resolve_database_urls()
    bench = server.for_database(BENCH_DB)
    with psycopg.connect(server.libpq, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    try:
        upgrade(bench)
        settings = {**vars(args), **SCENARIOS[scenario]}
        for key in SCENARIO_KEYS:  # explicit flags win over the scenario's values
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        return {"scenario": scenario, **measure(argparse.Namespace(**settings), bench)}
    finally:
        if not args.keep_db:
            with psycopg.connect(server.libpq, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def measure(args: argparse.Namespace, bench: DatabaseUrls) -> dict[str, Any]:
    """Write, kill and restart the consumer, wait for the feed to catch up, then analyse."""
    state = Path(tempfile.mkdtemp(prefix="fishnet-bench-feed-"))
    consumer = Consumer(args, bench.libpq, state)
    consumer.start()
    ticks_file = state / "ticks.jsonl"
    deadline = time.time() + 120
    while not list(state.glob("ready-*")) and time.time() < deadline:
        time.sleep(0.1)  # the writers start once the consumer has loaded Dagster and our code
    time.sleep(1.0)  # and has opened its first tick's LISTEN

    share, extra = divmod(args.inputs, args.writers)
    writers = [
        multiprocessing.Process(
            target=writer_main,
            args=(
                WriterConfig(
                    database_url=bench.libpq,
                    rows=share + (1 if i < extra else 0),
                    seed=args.seed * 100 + i,
                    max_rows=args.max_rows,
                    think_min_s=args.think_min,
                    think_max_s=args.think_max,
                    hold_prob=args.hold_prob,
                    hold_max_s=args.hold_max,
                    abort_prob=args.abort_prob,
                    out=str(state / f"writer-{i}.jsonl"),
                ),
            ),
        )
        for i in range(args.writers)
    ]
    started = time.time()
    for w in writers:
        w.start()

    rng = random.Random(args.seed)
    expected_s = args.inputs / args.writers / 25.5 * ((args.think_min + args.think_max) / 2 + 0.2)
    kill_at = sorted(started + rng.uniform(0.1, 0.8) * expected_s for _ in range(args.kills))
    while any(w.is_alive() for w in writers):
        if kill_at and time.time() >= kill_at[0]:
            kill_at.pop(0)
            consumer.kill()
        consumer.ensure_running(args.restart_delay)
        time.sleep(0.05)
    writers_done = time.time()
    for w in writers:
        w.join()

    committed: dict[int, float] = {}
    aborted: set[int] = set()
    for i in range(args.writers):
        for line in (state / f"writer-{i}.jsonl").read_text().splitlines():
            record = json.loads(line)
            if "aborted" in record:
                aborted.update(record["aborted"])
            else:
                committed.update((row_id, record["commit"]) for row_id in record["ids"])

    def requested() -> dict[str, tuple[float, int, int]]:
        """First request time, batch and process of each run key (Dagster keeps the first)."""
        runs: dict[str, tuple[float, int, int]] = {}
        path = state / "requests.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            record = json.loads(line)
            runs.setdefault(record["run_key"], (record["at"], record["batch_id"], record["pid"]))
        return runs

    with psycopg.connect(bench.libpq, autocommit=True) as conn:
        deadline = time.time() + args.pause + args.wait + 120
        while True:  # until every committed input is covered by a requested batch
            consumer.ensure_running(args.restart_delay)
            batch_ids = [batch for _, batch, _ in requested().values()]
            row = conn.execute(
                "SELECT count(DISTINCT e.row_key) FROM ops.change_feed_batch b "
                "CROSS JOIN LATERAL unnest(b.event_ids) AS ev(id) "
                "JOIN ops.change_event e ON e.id = ev.id WHERE b.batch_id = ANY(%s)",
                (batch_ids,),
            ).fetchone()
            if (row and row[0] >= len(committed)) or time.time() > deadline:
                break
            time.sleep(0.2)
        consumer.stop()
        runs = requested()
        batch_events: dict[int, list[int]] = dict(
            conn.execute("SELECT batch_id, event_ids FROM ops.change_feed_batch").fetchall()
        )
        row_of_event: dict[int, int] = dict(
            conn.execute("SELECT id, row_key FROM ops.change_event").fetchall()
        )

    ticks = [json.loads(line) for line in ticks_file.read_text().splitlines() if line]
    request_lines = (state / "requests.jsonl").read_text().splitlines()
    return {
        "config": {
            key: getattr(args, key)
            for key in (
                "inputs",
                "writers",
                "max_rows",
                "think_min",
                "think_max",
                "hold_prob",
                "hold_max",
                "abort_prob",
                "pause",
                "wait",
                "kills",
                "restart_delay",
                "seed",
            )
        },
        "writing_s": round(writers_done - started, 1),
        "committed_inputs": len(committed),
        "aborted_inputs": len(aborted),
        "consumer": {
            "ticks": len(ticks),
            "ticks_with_run_request": sum(1 for t in ticks if t["run_keys"]),
            "sigkills": consumer.kills,
            "planned_crashes_before_cursor_stored": consumer.self_crashes,
            "restarts": consumer.restarts,
            "run_request_lines": len(request_lines),
            "distinct_run_keys": len(runs),
            "duplicate_run_requests_deduped_by_run_key": len(request_lines) - len(runs),
            "recorded_batches": len(batch_events),
        },
        **analyse(committed, runs, batch_events, row_of_event, ticks),
    }


def analyse(
    committed: dict[int, float],
    runs: dict[str, tuple[float, int, int]],
    batch_events: dict[int, list[int]],
    row_of_event: dict[int, int],
    ticks: list[dict[str, Any]],
) -> dict[str, Any]:
    """Loss, double handling and delays; restart-affected events apart from the steady state.

    An event is affected by a restart when it was committed between the last tick of a consumer
    process and the end of the first tick of the next one, or delivered by that first tick (a
    re-emitted batch).
    """
    handled_by: dict[int, list[str]] = {}
    requested_at: dict[int, float] = {}
    restart_rows: set[int] = set()
    first_end: dict[int, float] = {}
    last_end: dict[int, float] = {}
    for tick in ticks:
        first_end.setdefault(tick["pid"], tick["end"])
        last_end[tick["pid"]] = tick["end"]
    pids = list(first_end)
    for run_key, (at, batch_id, pid) in runs.items():
        for event_id in batch_events[batch_id]:
            row = row_of_event[event_id]
            handled_by.setdefault(row, []).append(run_key)
            requested_at[row] = min(at, requested_at.get(row, at))
            if pid != pids[0] and at == first_end.get(pid):
                restart_rows.add(row)
    lost = sorted(set(committed) - set(handled_by))
    twice = sorted(row for row, keys in handled_by.items() if len(keys) > 1)
    phantom = sorted(set(handled_by) - set(committed))

    restarts = [(last_end[a], first_end[b]) for a, b in zip(pids, pids[1:], strict=False)]
    windows = sorted((t["start"], t["end"]) for t in ticks)
    starts = [w[0] for w in windows]

    def restarting(at: float) -> bool:
        return any(a < at <= b for a, b in restarts)

    def in_tick(at: float) -> bool:
        i = bisect.bisect_right(starts, at) - 1
        return i >= 0 and windows[i][0] <= at <= windows[i][1]

    groups: dict[str, list[float]] = {
        "all": [],
        "steady": [],
        "steady_tick_in_flight": [],
        "steady_between_ticks": [],
        "restart": [],
    }
    for row, commit in committed.items():
        if row not in requested_at:
            continue
        delay = requested_at[row] - commit
        groups["all"].append(delay)
        if row in restart_rows or restarting(commit):
            groups["restart"].append(delay)
            continue
        groups["steady"].append(delay)
        groups["steady_tick_in_flight" if in_tick(commit) else "steady_between_ticks"].append(delay)
    overall = _summary(groups["all"])
    steady = _summary(groups["steady"])
    return {
        "events_lost": len(lost),
        "events_handled_twice": len(twice),
        "phantom_events_from_aborted_transactions": len(phantom),
        "lost_sample": lost[:20],
        "restart_gaps_s": [round(b - a, 1) for a, b in restarts],
        "delay_commit_to_run_request": {
            "all_events": overall,
            "steady_state": steady,
            "steady_committed_while_a_tick_was_in_flight": _summary(
                groups["steady_tick_in_flight"]
            ),
            "steady_committed_between_ticks": _summary(groups["steady_between_ticks"]),
            "restart_affected": _summary(groups["restart"]),
        },
        "targets": {"p50_s": 1.0, "p95_s": 5.0},
        "targets_met": {
            "no_loss": not lost,
            "no_double": not twice,
            "p50_all": overall["p50_s"] < 1.0,
            "p95_all": overall["p95_s"] <= 5.0,
            "p50_steady": steady["p50_s"] < 1.0,
            "p95_steady": steady["p95_s"] <= 5.0,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    consumer = sub.add_parser("consumer", help="internal: the sensor loop process")
    consumer.add_argument("--database-url", required=True)
    consumer.add_argument("--state", required=True)
    consumer.add_argument("--pause", type=float, required=True)
    consumer.add_argument("--wait", type=float, required=True)
    consumer.add_argument("--crash-point", choices=["none", "evaluated", "requested"])
    consumer.add_argument("--crash-after", type=int, default=0)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--inputs", type=int, help="committed inputs (scenario default)")
    parser.add_argument("--writers", type=int, help="writer processes (scenario default)")
    parser.add_argument("--think-min", type=float, help="writer pause between transactions, s")
    parser.add_argument("--think-max", type=float)
    parser.add_argument("--kills", type=int, help="SIGKILLs of the consumer (scenario default)")
    parser.add_argument("--max-rows", type=int, default=50, help="rows per transaction: 1..N")
    parser.add_argument("--hold-prob", type=float, default=0.3, help="share of txns held open")
    parser.add_argument("--hold-max", type=float, default=1.0, help="seconds a txn stays open")
    parser.add_argument("--abort-prob", type=float, default=0.05)
    parser.add_argument("--pause", type=float, default=5.0, help="daemon sensor loop period, s")
    parser.add_argument("--wait", type=float, default=20.0, help="a tick's LISTEN wait, s")
    parser.add_argument("--restart-delay", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.command == "consumer":
        consumer_main(args)
        return 0

    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results = []
    for scenario in scenarios:
        print(f"scenario {scenario} ...", flush=True)
        result = run(args, scenario)
        results.append(result)
        delays = result["delay_commit_to_run_request"]
        print(
            json.dumps(
                {
                    "lost": result["events_lost"],
                    "twice": result["events_handled_twice"],
                    "all": delays["all_events"],
                    "steady": delays["steady_state"],
                },
                indent=2,
            ),
            flush=True,
        )
    report = {
        "benchmark": "change_feed",
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_end": list(os.getloadavg()),
        "scenarios": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")
    ok = all(r["events_lost"] == 0 and r["events_handled_twice"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
