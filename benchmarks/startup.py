"""Startup cost: importing the definitions, and `dagster job execute` against an in-process run.

Two ratios, each against a baseline measured in the same run (machines here are noisy):

- definitions import / `import dagster`: each in a fresh interpreter, `--repeat` times, medians.
  Target <= 1.5.
- `dagster job execute -j all_assets_job` / the same job run in process (what `fishnet demo` does
  for its materialisation), both from a fresh interpreter on the same migrated, seeded database.
  Target <= 2; medians of `--job-repeat` runs each, alternated. Each step of a multiprocess run
  starts from the forkserver that preloaded the definitions and the heavy libraries
  (platform_assets/definitions.py), instead of re-importing them.

Usage: .venv/bin/python benchmarks/startup.py [--repeat 5] [--job-repeat 3] [--skip-jobs]
Writes benchmarks/results/startup.json. Uses DATABASE_URL, else an embedded server in a temporary
state directory (started and stopped here). Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "startup.json"

IN_PROCESS = """
from dagster import DagsterInstance
from platform_assets.definitions import all_assets_job, defs
result = defs.resolve_job_def(all_assets_job.name).execute_in_process(
    instance=DagsterInstance.get(), raise_on_error=False
)
raise SystemExit(0 if result.success else 1)
"""


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one command; it must succeed."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... failed:\n{done.stderr[-3000:]}")
    return elapsed


def imports(repeat: int) -> dict[str, object]:
    """Fresh-interpreter import times, alternating so that load drifts hit both alike."""
    dagster: list[float] = []
    project: list[float] = []
    for _ in range(repeat):
        dagster.append(timed([sys.executable, "-c", "import dagster"]))
        project.append(timed([sys.executable, "-c", "import platform_assets.definitions"]))
    d, p = statistics.median(dagster), statistics.median(project)
    return {
        "import_dagster_s": round(d, 3),
        "import_definitions_s": round(p, 3),
        "ratio": round(p / d, 3),
        "target_ratio": 1.5,
        "samples": {"dagster": dagster, "definitions": project},
    }


def jobs(repeat: int) -> dict[str, object]:
    """`dagster job execute` against the in-process run of the same job, same database."""
    env = dict(os.environ)
    state = None
    if not env.get("DATABASE_URL"):
        state = tempfile.mkdtemp(prefix="fishnet-startup-")
        env["FISHNET_STATE_DIR"] = state
    fishnet = str(Path(sys.executable).with_name("fishnet"))
    try:
        exports = subprocess.run(
            [fishnet, "env"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        ).stdout
        for line in exports.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value.strip("'")
        # seed once (the demo's preparers and a first run), so both timed runs do the same work
        timed([fishnet, "demo"], env)
        dagster = str(Path(sys.executable).with_name("dagster"))
        cli_argv = [dagster, "job", "execute", "-m", "platform_assets.definitions"]
        cli_argv += ["-j", "all_assets_job"]
        # alternate, so that load drifts hit both alike; an in-process run first and last
        in_process = [timed([sys.executable, "-c", IN_PROCESS], env)]
        cli: list[float] = []
        for _ in range(repeat):
            cli.append(timed(cli_argv, env))
            in_process.append(timed([sys.executable, "-c", IN_PROCESS], env))
    finally:
        if state:
            subprocess.run([fishnet, "db", "stop"], cwd=ROOT, env=env, capture_output=True)
    baseline, through_cli = statistics.median(in_process), statistics.median(cli)
    return {
        "in_process_s": round(baseline, 2),
        "dagster_job_execute_s": round(through_cli, 2),
        "ratio": round(through_cli / baseline, 3),
        "target_ratio": 2.0,
        "samples": {
            "in_process": [round(x, 2) for x in in_process],
            "dagster_job_execute": [round(x, 2) for x in cli],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--job-repeat", type=int, default=3, help="`dagster job execute` runs")
    parser.add_argument("--skip-jobs", action="store_true", help="only the import ratio")
    args = parser.parse_args()
    result: dict[str, object] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "load_average_at_start": os.getloadavg(),
        "imports": imports(args.repeat),
    }
    if not args.skip_jobs:
        result["all_assets_job"] = jobs(args.job_repeat)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
