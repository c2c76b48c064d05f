"""Benchmark: the math verifier against plain Math-Verify, in the same run.

1. Per-sample latency. Every conformance row (Math-Verify's own test table) is
   scored with MathVerifier.compare (extraction in the caller, parse + verify in
   a warm worker, one IPC round trip) and with plain
   `verify(parse(gold), parse(prediction))` in this process, interleaved row by
   row so that both see the same machine load. Prints median and p99 of each
   and the ratio (target: median at most 1.2x plain Math-Verify).
2. Throughput. The same rows scored by 1 thread on a 1-worker verifier, then by
   2 threads on a 2-worker verifier (as `--workers 2` does). Prints samples/s and
   the ratio (target: at least 1.7x on 2 free cores).

Run: .venv/bin/python bench/bench_math.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from rewards._workers import PoolConfig, WorkerPool
from rewards.math import MathConfig, MathVerifier

_DEFAULT_CASES_DIR = Path(__file__).resolve().parents[1] / "tests" / "conformance"
CASES = Path(os.environ.get("ARBITER_CONFORMANCE_DIR", _DEFAULT_CASES_DIR)) / "math_verify_cases.jsonl"
PLAIN_TARGETS = {
    "latex_boxed0": LatexExtractionConfig(boxed_match_priority=0),
    "latex_default": LatexExtractionConfig(),
    "latex": LatexExtractionConfig(),
    "expr": ExprExtractionConfig(),
}


def load_rows() -> list[dict[str, Any]]:
    if not CASES.exists():
        sys.exit(f"conformance table not found at {CASES}; set ARBITER_CONFORMANCE_DIR")
    return [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]


def ours(verifier: MathVerifier, row: dict[str, Any]) -> None:
    config = row["config"]
    verifier.compare(
        row["gold"],
        row["prediction"],
        targets=tuple(config["extraction"]),
        float_rounding=config["precision"],
        strict=config["strict"],
        allow_set_relation_comp=config["allow_set_relation_comp"],
    )


def plain(row: dict[str, Any]) -> None:
    # Math-Verify as a user calls it on the main thread, its own signal timeouts included.
    config = row["config"]
    targets = [PLAIN_TARGETS[name] for name in config["extraction"]]
    verify(
        parse(row["gold"], targets),
        parse(row["prediction"], targets),
        float_rounding=config["precision"],
        strict=config["strict"],
        allow_set_relation_comp=config["allow_set_relation_comp"],
    )


def timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(rows: list[dict[str, Any]], repeats: int) -> None:
    verifier = MathVerifier(MathConfig(workers=1, timeout_s=60))
    verifier.warm()
    # The bare IPC round trip, timed in the same rhythm (right after a plain call, so the
    # worker has been idle as long): what the pool adds, apart from the comparison itself.
    echo = WorkerPool(PoolConfig(handler="builtins:len", workers=1))
    echo.start()
    try:
        for row in rows:  # one untimed pass each: imports, regex compilation, first-use caches
            ours(verifier, row)
            plain(row)
        ours_s: list[float] = []
        plain_s: list[float] = []
        ipc_s: list[float] = []
        for _ in range(repeats):
            for row in rows:
                ours_s.append(timed(ours, verifier, row))
                plain_s.append(timed(plain, row))
                ipc_s.append(timed(echo.call, row["gold"], 60))
    finally:
        verifier.close()
        echo.close()
    med_ours, med_plain = statistics.median(ours_s), statistics.median(plain_s)
    print(f"per-sample latency over {len(ours_s)} comparisons ({len(rows)} rows x {repeats})")
    print(f"  {'':28}{'median ms':>12}{'p99 ms':>12}")
    for label, values in (
        ("plain Math-Verify", plain_s),
        ("MathVerifier (1 worker)", ours_s),
        ("  of which IPC round trip", ipc_s),
    ):
        print(f"  {label:28}{statistics.median(values) * 1e3:12.3f}{percentile(values, 0.99) * 1e3:12.3f}")
    print(f"  median ratio ours/plain: {med_ours / med_plain:.2f}x (target <= 1.2x)")


def throughput(rows: list[dict[str, Any]], repeats: int) -> None:
    work = rows * repeats
    rates = {}
    for workers in (1, 2):
        verifier = MathVerifier(MathConfig(workers=workers, timeout_s=60))
        verifier.warm()
        try:
            with ThreadPoolExecutor(max_workers=workers) as threads:
                list(threads.map(lambda row, v=verifier: ours(v, row), rows))  # warm every worker's caches
                start = time.perf_counter()
                list(threads.map(lambda row, v=verifier: ours(v, row), work))
                rates[workers] = len(work) / (time.perf_counter() - start)
        finally:
            verifier.close()
    print(f"throughput over {len(work)} comparisons")
    for workers, rate in rates.items():
        print(f"  {workers} worker(s), {workers} thread(s): {rate:8.1f} samples/s")
    print(f"  ratio 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x (target >= 1.7x on 2 free cores)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed pass instead of three")
    parser.add_argument("--repeats", type=int, default=None, help="timed passes over the rows")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    rows = load_rows()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (others' work skews timings)")
    latency(rows, repeats)
    throughput(rows, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
