"""Cost of one trivial run: plain subprocess vs a new jail (cold) vs the warm pool.

    .venv/bin/python bench/bench_sandbox_overhead.py [--runs N]

Prints the median wall time per run of `pass` for each, sequentially (one at a time), and the
ratios warm/plain and cold/plain; all three measured in this same process run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable

from sandbox import LocalBackend, PoolConfig, RunRequest, Sandbox, Status
from sandbox.languages import PYTHON


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    request = RunRequest("python", "pass\n")

    def checked(backend) -> Callable[[], object]:
        def once() -> None:
            result = backend.run(request)
            if result.status is not Status.OK:
                raise RuntimeError(f"sandbox run failed: {result}")
        return once

    plain = median_ms(lambda: subprocess.run([PYTHON, "-c", "pass"], check=True), args.runs)
    cold = median_ms(checked(LocalBackend()), max(5, args.runs // 4))
    with Sandbox(PoolConfig(pool_size=2)) as box:
        time.sleep(1.0)  # let the pool start its jails
        warm = median_ms(checked(box), args.runs)
    print(f"plain subprocess python3 -c pass : {plain:6.1f} ms/run")
    print(f"sandbox cold (new jail per run)  : {cold:6.1f} ms/run  ({cold / plain:.2f}x plain)")
    print(f"sandbox warm pool                : {warm:6.1f} ms/run  ({warm / plain:.2f}x plain)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
