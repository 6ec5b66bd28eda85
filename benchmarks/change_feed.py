"""Change feed end to end: lost events, double handling and delay, with a consumer killed meanwhile.

Writers (processes) insert inputs in transactions of 1-50 rows; some are held open for a random
moment so commits go out of id order, some are rolled back. A consumer process evaluates the
change-feed sensors (through `build_sensor_context`) the way the daemon does, in one of these
variants, each on its own fresh database, all in the same benchmark run:

- `lanes:N`: the N lanes of `change_feed_sensors`, sharing the consumer's position in the database.
  Like the daemon, one loop every `--pause` seconds starts a tick of every lane that has none in
  flight (ticks run in threads, as with `sensors: use_threads`); a lane's next tick starts at the
  first loop iteration after its tick ended.
- `lanes:N:independent`: each lane on a loop of its own, phases `k * pause / N` apart (not what the
  daemon does: its single loop starts all idle lanes at the same moment; for comparison).

After each tick the consumer submits the run requests to a Dagster instance (PostgreSQL storage in
the benchmark database) the way the daemon does (a run key already used by a run of the same
sensor starts nothing), logs them, then stores the tick's cursor in a file. The benchmark SIGKILLs
it a few times and restarts it, and two incarnations die on purpose in the windows that matter:
once right after evaluating (batch recorded in the database, no run, no cursor stored: it must be
emitted again) and once after the runs were created but before the cursor was stored (the batch
must not start a second run).

Then: events lost (committed inputs no run covers; must be 0), events handled twice (in two runs;
must be 0), and the delay from a writer's commit to the run request (p50, p95, max), for all
events and for those committed while the consumer was up (steady state), split by whether a tick
was in flight at commit time.

Two scenarios: `continuous` (the issue's 10,000 inputs from 4 writers, a commit every ~0.3 s) and
`sparse` (commits further apart than the daemon's loop period, as a harvest every few minutes
would make). Results: benchmarks/results/change_feed.json. Usage:

    .venv/bin/python benchmarks/change_feed.py [--scenario all|continuous|sparse]
        [--variants lanes:1,lanes:3] [--pause 5]

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
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resources.warehouse import DatabaseUrls, resolve_database_urls  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "change_feed.json"
BENCH_DB = "fishnet_bench_change_feed"
SENSOR_TAG = "bench/sensor"
"""Which sensor submitted a run (the daemon de-duplicates run keys per sensor)."""
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


# --- the consumer: the sensors, ticked like the daemon ticks them ---------------------------------


def consumer_main(args: argparse.Namespace) -> None:
    """Tick the variant's sensors on the daemon's loop; submit and log run requests, store cursors."""
    from dagster import (
        DagsterInstance,
        DagsterRun,
        DagsterRunStatus,
        RunRequest,
        RunsFilter,
        SensorResult,
        build_sensor_context,
        job,
        op,
    )

    from platform_assets.change_feed.tags import BATCH_TAG, RUN_KEY_TAG
    from resources.warehouse import WarehouseResource
    from sensors.change_feed import change_feed_sensors

    @op
    def noop() -> None:
        """Stands for the orchestrator."""

    @job(name="bench_orchestrator_job")
    def bench_job() -> None:
        noop()

    kind, lanes, phases = parse_variant(args.variant)
    warehouse = WarehouseResource(database_url=args.database_url)
    instance = DagsterInstance.from_config(args.dagster_home)
    state = Path(args.state)
    io_lock = threading.Lock()
    emitting_ticks = [0]
    sensors = change_feed_sensors(
        CONSUMER,
        ["processing.input"],
        ["INSERT"],
        job=bench_job,
        wait_seconds=args.wait,
        lanes=lanes,
    )
    names = [s.name for s in sensors]

    def evaluate(index: int, cursor: str | None) -> tuple[list[RunRequest], str | None]:
        sensor = sensors[index]
        with build_sensor_context(
            cursor=cursor,
            instance=instance,
            resources={"warehouse": warehouse},
            sensor_name=sensor.name,
        ) as context:
            outcome = sensor(context)
        assert isinstance(outcome, SensorResult)
        return list(outcome.run_requests or []), outcome.cursor

    def submit(name: str, request: RunRequest) -> bool:
        """Create the run unless a run of this sensor has the key (the daemon's check)."""
        assert request.run_key is not None
        same_key = instance.get_runs(RunsFilter(tags={RUN_KEY_TAG: request.run_key}))
        if any(run.tags.get(SENSOR_TAG) == name for run in same_key):
            return False
        instance.add_run(
            DagsterRun(
                job_name="bench_orchestrator_job",
                run_id=str(uuid.uuid4()),
                tags={**request.tags, SENSOR_TAG: name},
                status=DagsterRunStatus.NOT_STARTED,
            )
        )
        return True

    def run_tick(index: int) -> None:
        name = names[index]
        cursor_file = state / f"cursor-{name}.json"
        cursor = cursor_file.read_text() if cursor_file.exists() else None
        started = time.time()
        run_requests, new_cursor = evaluate(index, cursor)
        ended = time.time()
        with io_lock:
            tick = {
                "pid": os.getpid(),
                "lane": name,
                "start": started,
                "end": ended,
                "run_keys": [r.run_key for r in run_requests],
            }
            ticks.write(json.dumps(tick) + "\n")
            ticks.flush()
            emitting_ticks[0] += bool(run_requests)
            crash_now = bool(run_requests) and emitting_ticks[0] == args.crash_after
        if crash_now and args.crash_point == "evaluated":
            os._exit(70)  # batch recorded, no run, nothing stored: it must come again
        created = [submit(name, r) for r in run_requests]
        with io_lock:
            for request, new in zip(run_requests, created, strict=True):
                record = {
                    "run_key": request.run_key,
                    "batch_id": int(request.tags[BATCH_TAG]),
                    "at": ended,
                    "pid": os.getpid(),
                    "lane": name,
                    "created": new,
                }
                requests.write(json.dumps(record) + "\n")
            requests.flush()
            os.fsync(requests.fileno())
        if crash_now and args.crash_point == "requested":
            os._exit(71)  # runs created, cursor not stored: no second run may start
        if new_cursor is not None:
            tmp = cursor_file.with_suffix(f".tmp-{threading.get_ident()}")
            tmp.write_text(new_cursor)
            os.replace(tmp, cursor_file)

    def safe_tick(index: int) -> None:
        try:
            run_tick(index)
        except Exception as exc:  # a failed tick: the daemon records it and ticks again later
            print(f"tick of {names[index]} failed: {exc!r}", file=sys.stderr, flush=True)

    def next_iteration(anchor: float) -> float:
        now = time.time()
        return anchor + max(1, math.ceil((now - anchor) / args.pause)) * args.pause

    anchor = time.time()  # the daemon's loop starts when the daemon starts
    requests = open(state / "requests.jsonl", "a")  # noqa: SIM115 - closed by os._exit or kill
    ticks = open(state / "ticks.jsonl", "a")  # noqa: SIM115
    (state / f"ready-{os.getpid()}").touch()  # code loaded: the benchmark may start writing
    if phases == "independent":

        def own_loop(index: int) -> None:
            lane_anchor = anchor + index * args.pause / len(names)
            time.sleep(max(0.0, lane_anchor - time.time()))
            while True:
                safe_tick(index)
                time.sleep(max(0.0, next_iteration(lane_anchor) - time.time()))

        loops = [
            threading.Thread(target=own_loop, args=(i,), daemon=True) for i in range(len(names))
        ]
        for t in loops:
            t.start()
        for t in loops:
            t.join()
        return
    in_flight: dict[int, threading.Thread] = {}
    while True:  # the daemon's loop: start a tick of every lane with none in flight
        for index in range(len(names)):
            if index not in in_flight or not in_flight[index].is_alive():
                thread = threading.Thread(target=safe_tick, args=(index,), daemon=True)
                in_flight[index] = thread
                thread.start()
        time.sleep(max(0.0, next_iteration(anchor) - time.time()))


def parse_variant(variant: str) -> tuple[str, int, str]:
    """`lanes:N` or `lanes:N:independent` -> (kind, lanes, phases)."""
    parts = variant.split(":")
    if parts[0] == "lanes" and len(parts) in (2, 3) and parts[1].isdigit() and int(parts[1]) > 0:
        phases = parts[2] if len(parts) == 3 else "daemon"
        if phases in ("daemon", "independent"):
            return "lanes", int(parts[1]), phases
    raise ValueError(f"unknown variant {variant!r}: lanes:N or lanes:N:independent")


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

    def __init__(
        self, args: argparse.Namespace, database_url: str, state: Path, dagster_home: Path
    ) -> None:
        self.argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "consumer",
            "--database-url",
            database_url,
            "--state",
            str(state),
            "--dagster-home",
            str(dagster_home),
            "--variant",
            args.variant,
            "--pause",
            str(args.pause),
            "--wait",
            str(args.wait),
        ]
        # incarnation k dies on purpose as planned[k] says (point, at its n-th emitting tick)
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


def run(args: argparse.Namespace, scenario: str, variant: str) -> dict[str, Any]:
    """One scenario with one variant, in a fresh, migrated database."""
    from dagster import DagsterInstance

    from migrations import upgrade

    server = resolve_database_urls()
    bench = server.for_database(BENCH_DB)
    with psycopg.connect(server.libpq, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    try:
        upgrade(bench)
        # the Dagster instance the consumer submits runs to: its storage in the benchmark database
        dagster_home = Path(tempfile.mkdtemp(prefix="fishnet-bench-dagster-"))
        (dagster_home / "dagster.yaml").write_text(
            json.dumps(
                {
                    "storage": {"postgres": {"postgres_url": bench.dagster}},
                    "telemetry": {"enabled": False},
                }
            )
        )
        with DagsterInstance.from_config(str(dagster_home)):
            pass  # creates the storage tables once, before any consumer process
        settings = {**vars(args), **SCENARIOS[scenario], "variant": variant}
        for key in SCENARIO_KEYS:  # explicit flags win over the scenario's values
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        measured = measure(argparse.Namespace(**settings), bench, dagster_home)
        return {"scenario": scenario, "variant": variant, **measured}
    finally:
        if not args.keep_db:
            with psycopg.connect(server.libpq, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


Requested = dict[str, tuple[float, int, int, str]]
"""Run key -> (request time, batch id, process, lane) of the request that created the run."""


def measure(args: argparse.Namespace, bench: DatabaseUrls, dagster_home: Path) -> dict[str, Any]:
    """Write, kill and restart the consumer, wait for the feed to catch up, then analyse."""
    state = Path(tempfile.mkdtemp(prefix="fishnet-bench-feed-"))
    consumer = Consumer(args, bench.libpq, state, dagster_home)
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

    def request_lines() -> list[dict[str, Any]]:
        path = state / "requests.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line]

    from dagster import DagsterInstance, RunsFilter

    from platform_assets.change_feed.tags import BATCH_TAG, CONSUMER_TAG, RUN_KEY_TAG

    instance = DagsterInstance.from_config(str(dagster_home))

    def created_runs() -> Requested:
        """The runs in the Dagster instance, with the time their request was made.

        The instance, not the request log, is the truth: a process killed while one lane's thread
        was between creating a run and logging it leaves a run with no log line (its request time
        is then the run's creation time).
        """
        logged: dict[str, tuple[float, int]] = {}
        for record in request_lines():
            if record["created"]:
                logged.setdefault(record["run_key"], (record["at"], record["pid"]))
        runs: Requested = {}
        for run_record in instance.get_run_records(
            filters=RunsFilter(tags={CONSUMER_TAG: CONSUMER})
        ):
            tags = run_record.dagster_run.tags
            key = tags[RUN_KEY_TAG]
            at, pid = logged.get(key, (run_record.create_timestamp.timestamp(), -1))
            if key in runs:  # a second run for one key: both count (as doubles, below)
                key = f"{key}#{run_record.dagster_run.run_id}"
            runs[key] = (at, int(tags[BATCH_TAG]), pid, tags[SENSOR_TAG])
        return runs

    with psycopg.connect(bench.libpq, autocommit=True) as conn:
        deadline = time.time() + args.pause + args.wait + 120
        while True:  # until every committed input is covered by a run
            consumer.ensure_running(args.restart_delay)
            batch_ids = [batch for _, batch, _, _ in created_runs().values()]
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
        runs = created_runs()
        batch_events: dict[int, list[int]] = dict(
            conn.execute("SELECT batch_id, event_ids FROM ops.change_feed_batch").fetchall()
        )
        row_of_event: dict[int, int] = dict(
            conn.execute("SELECT id, row_key FROM ops.change_event").fetchall()
        )
        emitted_again, unconfirmed = conn.execute(
            "SELECT count(*) FILTER (WHERE emissions > 1), "
            "count(*) FILTER (WHERE emitted_by IS NOT NULL AND run_seen_at IS NULL) "
            "FROM ops.change_feed_batch"
        ).fetchone() or (0, 0)

    instance.dispose()
    ticks = [json.loads(line) for line in ticks_file.read_text().splitlines() if line]
    lines = request_lines()
    by_lane: dict[str, int] = {}
    for at_lane in (v[3] for v in runs.values()):
        by_lane[at_lane] = by_lane.get(at_lane, 0) + 1
    return {
        "config": {
            key: getattr(args, key)
            for key in (
                "variant",
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
            "run_request_lines": len(lines),
            "runs_created": len(runs),
            "runs_created_but_not_logged": sum(1 for v in runs.values() if v[2] == -1),
            "distinct_run_keys": len({r["run_key"] for r in lines}),
            "requests_not_started_known_run_key": sum(1 for r in lines if not r["created"]),
            "runs_by_lane": dict(sorted(by_lane.items())),
            "recorded_batches": len(batch_events),
            "batches_emitted_again": emitted_again,
            "batches_without_run_seen_at_end": unconfirmed,
        },
        **analyse(committed, runs, batch_events, row_of_event, ticks),
    }


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def analyse(
    committed: dict[int, float],
    runs: Requested,
    batch_events: dict[int, list[int]],
    row_of_event: dict[int, int],
    ticks: list[dict[str, Any]],
) -> dict[str, Any]:
    """Loss, double handling and delays; restart-affected events apart from the steady state.

    An event is affected by a restart when it was committed between the last tick of a consumer
    process and the end of the first tick of the next one, or delivered by the first tick of a
    lane in a restarted process (a batch emitted again).
    """
    handled_by: dict[int, list[str]] = {}
    requested_at: dict[int, float] = {}
    restart_rows: set[int] = set()
    first_end: dict[int, float] = {}
    last_end: dict[int, float] = {}
    lane_first_end: dict[tuple[int, str], float] = {}
    for tick in sorted(ticks, key=lambda t: t["end"]):
        first_end.setdefault(tick["pid"], tick["end"])
        last_end[tick["pid"]] = tick["end"]
        lane_first_end.setdefault((tick["pid"], tick.get("lane", "")), tick["end"])
    pids = sorted(first_end, key=lambda pid: first_end[pid])
    for run_key, (at, batch_id, pid, lane) in runs.items():
        for event_id in batch_events[batch_id]:
            row = row_of_event[event_id]
            handled_by.setdefault(row, []).append(run_key)
            requested_at[row] = min(at, requested_at.get(row, at))
            if pid != pids[0] and at == lane_first_end.get((pid, lane)):
                restart_rows.add(row)
    lost = sorted(set(committed) - set(handled_by))
    twice = sorted(row for row, keys in handled_by.items() if len(keys) > 1)
    phantom = sorted(set(handled_by) - set(committed))

    restarts = [(last_end[a], first_end[b]) for a, b in zip(pids, pids[1:], strict=False)]
    windows = _merge([(t["start"], t["end"]) for t in ticks])  # some tick in flight
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


def comparison(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per scenario and variant: what the issue asks about."""
    lines = []
    for r in results:
        delays = r["delay_commit_to_run_request"]
        lines.append(
            {
                "scenario": r["scenario"],
                "variant": r["variant"],
                "lost": r["events_lost"],
                "twice": r["events_handled_twice"],
                "all_p50_s": delays["all_events"]["p50_s"],
                "all_p95_s": delays["all_events"]["p95_s"],
                "steady_p50_s": delays["steady_state"]["p50_s"],
                "steady_p95_s": delays["steady_state"]["p95_s"],
                "restart_affected_share": round(
                    delays["restart_affected"]["count"] / max(1, delays["all_events"]["count"]),
                    3,
                ),
                "runs": r["consumer"]["runs_created"],
            }
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    consumer = sub.add_parser("consumer", help="internal: the sensor loop process")
    consumer.add_argument("--database-url", required=True)
    consumer.add_argument("--state", required=True)
    consumer.add_argument("--dagster-home", required=True)
    consumer.add_argument("--variant", required=True)
    consumer.add_argument("--pause", type=float, required=True)
    consumer.add_argument("--wait", type=float, required=True)
    consumer.add_argument("--crash-point", choices=["none", "evaluated", "requested"])
    consumer.add_argument("--crash-after", type=int, default=0)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument(
        "--variants",
        default="lanes:1,lanes:3",
        help="comma-separated: lanes:N, lanes:N:independent (each on a fresh database)",
    )
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

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for variant in variants:
        parse_variant(variant)
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results = []
    for scenario in scenarios:
        for variant in variants:
            print(f"scenario {scenario}, {variant} ...", flush=True)
            result = run(args, scenario, variant)
            results.append(result)
            print(json.dumps(comparison([result])[0]), flush=True)
    report = {
        "benchmark": "change_feed",
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_end": list(os.getloadavg()),
        "comparison": comparison(results),
        "scenarios": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")
    ok = all(r["events_lost"] == 0 and r["events_handled_twice"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
