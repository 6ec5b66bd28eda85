"""Throughput of the logbook parser against an ``lxml.etree.fromstring`` baseline, same run.

Absolute rates swing 20-30 % on a shared VM, so the figure that matters is the ratio
parser/baseline on the same bytes, measured in alternating rounds so that drift hits both sides.
Sets follow the reference benchmark (``benchmark_monitorfish_parsers.json`` in the corpus): the ERS
messages that parse, and the 27 FLUX "business" messages (manifest subset ``business``; the three
FLUX edge cases are left out).

Run: ``python benchmarks/logbook_parse.py [--corpus-dir DIR] [--min-seconds S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lxml import etree

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from platform_assets.logbook import ers, parse  # noqa: E402
from platform_assets.logbook.parse import parse_message  # noqa: E402

# Ratios the reference parser reaches on this corpus, and the targets set for this one.
REFERENCE_RATIOS = {"ERS": 0.33, "FLUX_business": 0.13}
TARGET_RATIOS = {"ERS": 0.66, "FLUX_business": 0.26}
ROUNDS = 10


def default_corpus_dir() -> Path:
    """``$LOGBOOK_CORPUS_DIR``, else ``../shared/data/logbook`` next to the repository."""
    override = os.environ.get("LOGBOOK_CORPUS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "logbook"


def load_sets(corpus_dir: Path) -> dict[str, list[bytes]]:
    """Message bytes per benchmark set, read through the corpus manifest."""
    manifest = json.loads((corpus_dir / "manifest.json").read_text())
    sets: dict[str, list[bytes]] = {"ERS": [], "FLUX_business": []}
    for entry in manifest["files"]:
        expected = json.loads((corpus_dir / entry["expected"]).read_text())
        if "error" in expected:
            continue
        if entry["subset"] == "ers":
            sets["ERS"].append((corpus_dir / entry["message"]).read_bytes())
        elif entry["subset"] == "business":
            sets["FLUX_business"].append((corpus_dir / entry["message"]).read_bytes())
    return sets


def _run(
    call: Callable[[bytes], Any], messages: Sequence[bytes], seconds: float
) -> tuple[int, float]:
    """Whole passes over ``messages`` until ``seconds`` elapsed: (messages done, seconds)."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for message in messages:
            call(message)
        done += len(messages)
        now = time.perf_counter()
        if now >= deadline:
            return done, now - start


def measure(
    candidates: dict[str, Callable[[bytes], Any]], messages: Sequence[bytes], min_seconds: float
) -> dict[str, dict[str, Any]]:
    """Messages/s of each candidate over alternating short rounds, so load drift hits all alike.

    Each candidate gets ``min_seconds`` in ``ROUNDS`` slices; per round its rate is recorded, so
    callers can pair rounds that ran next to each other.
    """
    stats: dict[str, dict[str, Any]] = {
        name: {"messages": 0, "seconds": 0.0, "round_msg_per_s": []} for name in candidates
    }
    for _ in range(ROUNDS):
        for name, call in candidates.items():
            done, seconds = _run(call, messages, min_seconds / ROUNDS)
            stats[name]["messages"] += done
            stats[name]["seconds"] += seconds
            stats[name]["round_msg_per_s"].append(round(done / seconds, 1))
    for entry in stats.values():
        entry["msg_per_s"] = round(entry["messages"] / entry["seconds"], 1)
        entry["seconds"] = round(entry["seconds"], 3)
    return stats


def paired_ratio(mine: dict[str, Any], base: dict[str, Any]) -> float:
    """Median over rounds of ``mine``'s rate / ``base``'s rate in the same round."""
    return statistics.median(
        a / b for a, b in zip(mine["round_msg_per_s"], base["round_msg_per_s"], strict=True)
    )


def parse_with_python_walker(message: bytes) -> Any:
    """``parse_message`` with ERS trees read by ``ers.py`` instead of the compiled walker."""
    compiled, parse._parse_ers_ops = parse._parse_ers_ops, ers.parse_ops
    try:
        return parse_message(message)
    finally:
        parse._parse_ers_ops = compiled


def bench_parse(corpus_dir: Path, min_seconds: float = 3.0) -> dict:
    """Parser vs ``lxml.etree.fromstring`` messages/s per set, and their ratio, in one run.

    The ratio is the median over rounds of parser rate / baseline rate of the same round: on a
    shared machine that is steadier than the ratio of totals, which is reported too.
    """
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "lxml": ".".join(map(str, etree.LXML_VERSION)),
        "cpu_count": os.cpu_count(),
        "loadavg_before": list(os.getloadavg()),
        "min_seconds": min_seconds,
        "rounds": ROUNDS,
        # Which walker reads ERS trees in `parser` (parse.ERS_COMPILED); the ERS set also times
        # the pure-Python walker (ers.py) as `parser_python_walker`, for comparison.
        "ers_walker": "compiled" if parse.ERS_COMPILED else "python",
        "sets": {},
        "ratios": {},
    }
    for set_name, messages in load_sets(corpus_dir).items():
        for message in messages:  # fail loudly rather than time exceptions
            parse_message(message)
        candidates: dict[str, Callable[[bytes], Any]] = {
            "parser": parse_message,
            "baseline_lxml_fromstring": etree.fromstring,
        }
        if set_name == "ERS" and parse.ERS_COMPILED:
            candidates["parser_python_walker"] = parse_with_python_walker
        rates = measure(candidates, messages, min_seconds)
        parser, baseline = rates["parser"], rates["baseline_lxml_fromstring"]
        ratio = paired_ratio(parser, baseline)
        result["sets"][set_name] = {
            "n_messages": len(messages),
            "bytes": sum(map(len, messages)),
            **rates,
            "ratio": round(ratio, 3),
            "ratio_of_totals": round(parser["msg_per_s"] / baseline["msg_per_s"], 3),
            "reference_ratio": REFERENCE_RATIOS[set_name],
            "target_ratio": TARGET_RATIOS[set_name],
            "meets_target": ratio >= TARGET_RATIOS[set_name],
        }
        if "parser_python_walker" in rates:
            python_ratio = paired_ratio(rates["parser_python_walker"], baseline)
            result["sets"][set_name]["python_walker_ratio"] = round(python_ratio, 3)
        result["ratios"][set_name] = round(ratio, 3)
    result["loadavg_after"] = list(os.getloadavg())
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Print the benchmark result as JSON."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--corpus-dir", type=Path, default=default_corpus_dir())
    cli.add_argument("--min-seconds", type=float, default=3.0)
    args = cli.parse_args(argv)
    print(json.dumps(bench_parse(args.corpus_dir, args.min_seconds), indent=2))


if __name__ == "__main__":
    main()
