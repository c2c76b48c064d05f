"""`arbiter score`: score a JSONL file of completions and write one JSON line per input line.

    arbiter score --input samples.jsonl --output scores.jsonl [--verifier NAME] [--workers N]
                  [--routing routing.yaml] [--audit FRACTION]

Every input line, a blank one included, yields exactly one output line, in input order: a scored
record (`ScoredSample.to_record()`) or an error record naming the line and the bad field. A
numeric `answer` is read as the text it was written with (`0.50` stays "0.50"). The
scoring backend is a `Scorer`, a function from an iterable of samples to their results in
the same order; `LocalScorer` scores in this process, and a remote backend plugs in the same
way. Samples whose verdict an independent check disputes (the math verifier's audit, see
`--audit`) are also written to OUTPUT.audit.jsonl (`scores.audit.jsonl` for `scores.jsonl`).
Exit status: 0 when the file was processed (error records included), 1 when the input
could not be read or the output written, 2 for bad arguments (unknown verifier, bad routing),
3 when `--endpoint` is asked for without the `services` extra installed.

The latency in the summary is each sample's own: from the start of its scoring to its result,
as the process that scored it measured it (a worker thread here, the server's worker with
`--endpoint`), so waiting for a thread, a batch or the network is not counted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml
from tqdm import tqdm

from arbiter.extras import MISSING_EXTRA_STATUS, missing_extra_message
from rewards.compose import ScoredSample, score_sample
from rewards.registry import Registry, default_registry
from rewards.routing import DEFAULT_ROUTING, RoutingConfig, SingleVerifierRouting
from rewards.types import Sample, SampleError
from services.config import ClientConfig  # plain dataclasses: no gRPC until an endpoint is used

Scorer = Callable[[Iterable[Sample]], Iterator[ScoredSample]]
"""Maps samples to their results, one per sample, in the order given."""

# How many samples each worker thread may have queued ahead: enough to keep threads busy
# without reading a large file into memory.
_LOOKAHEAD_PER_WORKER = 4


class VerifierLoadError(RuntimeError):
    """A routed verifier could not be built (a broken install, not a bad sample)."""


class LocalScorer:
    """Scores in this process with `score_sample`, on `workers` threads, results in input order.

    Threads give real parallelism because the heavy verifiers run their work in their own
    processes (the math worker pool, the code sandbox). Each verifier a sample needs is built
    on the reading thread before the sample is handed out, so a broken verifier stops the run
    with its name instead of failing every sample.
    """

    def __init__(
        self,
        routing: RoutingConfig = DEFAULT_ROUTING,
        registry: Registry | None = None,
        only: str | None = None,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.routing = routing
        self.registry = registry or default_registry()
        self.only = only
        self.workers = workers

    def _build_verifiers(self, sample: Sample) -> None:
        if self.only:
            names = [self.only]
        elif sample.task in self.routing.tasks:
            names = [wv.verifier for wv in self.routing.tasks[sample.task]]
        else:
            return  # score_sample reports the unknown task as an input error on this sample
        for name in names:
            try:
                self.registry.get(name)
            except Exception as exc:  # re-raised with the verifier's name; never a sample's score
                raise VerifierLoadError(f"cannot load verifier {name!r}: {type(exc).__name__}: {exc}") from exc

    def _score(self, sample: Sample) -> ScoredSample:
        return score_sample(sample, self.routing, self.registry, self.only)

    def __call__(self, samples: Iterable[Sample]) -> Iterator[ScoredSample]:
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="arbiter-score") as pool:
            pending: deque[Future[ScoredSample]] = deque()
            for sample in samples:
                self._build_verifiers(sample)
                pending.append(pool.submit(self._score, sample))
                if len(pending) >= self.workers * _LOOKAHEAD_PER_WORKER:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


class EndpointError(RuntimeError):
    """The endpoint refused the run as a whole (wrong token, no such service): no sample can be scored."""


class EndpointScorer:
    """Scores through a running cluster with the services client, a chunk at a time, in input order.

    The server side (or a verifier it cannot reach) answers per sample, so the output has
    the same records as in-process scoring; only a misconfiguration (wrong token, no
    server) stops the run, as an EndpointError. Needs the `services` extra (gRPC).
    """

    def __init__(self, config: ClientConfig, routing: RoutingConfig, chunk_size: int = 512) -> None:
        self.config = config
        self.routing = routing
        self.chunk_size = chunk_size

    def __call__(self, samples: Iterable[Sample]) -> Iterator[ScoredSample]:
        from services.client import ClientError, score_sync

        chunk: list[Sample] = []
        try:
            for sample in samples:
                chunk.append(sample)
                if len(chunk) >= self.chunk_size:
                    yield from score_sync(self.config, chunk, self.routing)
                    chunk = []
            if chunk:
                yield from score_sync(self.config, chunk, self.routing)
        except ClientError as exc:
            raise EndpointError(str(exc)) from exc


@dataclass(frozen=True)
class _InputError:
    line: int
    id: str | None
    field: str
    message: str

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "line": self.line,
            "verdict": "error",
            "reward": None,
            "error": {"field": self.field, "message": self.message},
        }


@dataclass(frozen=True)
class _Parsed:
    line: int
    sample: Sample


class _WrittenFloat(float):
    """A JSON number with a fraction or an exponent that prints as it was written (`0.50`, `1e3`),
    so that an answer keeps its form; in arithmetic it is the float it denotes."""

    text: str

    def __new__(cls, text: str) -> _WrittenFloat:
        number = super().__new__(cls, text)
        number.text = str(text)
        return number

    def __str__(self) -> str:
        return self.text


def _parse_lines(lines: Iterable[str]) -> Iterator[_Parsed | _InputError]:
    """Decode and validate each line; a blank line and the second use of an id are input errors."""
    first_seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            yield _InputError(number, None, "<line>", "blank line: expected a JSON object")
            continue
        try:
            raw = json.loads(text, parse_float=_WrittenFloat)
        except json.JSONDecodeError as exc:
            yield _InputError(number, None, "<line>", f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        known_id = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
        if known_id is not None and known_id in first_seen:
            message = f"duplicate id {known_id!r} (first used on line {first_seen[known_id]})"
            yield _InputError(number, known_id, "id", message)
            continue
        if known_id is not None:
            first_seen[known_id] = number  # a bad line still claims its id: each id is answered once
        try:
            sample = Sample.from_dict(raw)
        except SampleError as exc:
            yield _InputError(number, known_id, exc.field, exc.message)
            continue
        yield _Parsed(number, sample)


@dataclass
class Summary:
    """What the closing line reports: verdict counts, mean reward, latency percentiles."""

    verdicts: Counter[str] = field(default_factory=Counter)
    rewards: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    audited: int = 0
    audit_disagreements: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.verdicts[record["verdict"]] += 1
        if record.get("reward") is not None:
            self.rewards.append(record["reward"])
        if "elapsed_ms" in record and "error" not in record:
            self.latencies_ms.append(record["elapsed_ms"])

    @property
    def total(self) -> int:
        return sum(self.verdicts.values())

    def render(self, wall_s: float) -> str:
        counts = ", ".join(f"{verdict} {n}" for verdict, n in sorted(self.verdicts.items(), key=lambda kv: -kv[1]))
        lines = [f"scored {self.total} lines in {wall_s:.1f} s: {counts or 'nothing'}"]
        if self.rewards:
            lines.append(f"mean reward {sum(self.rewards) / len(self.rewards):.4f} over {len(self.rewards)} rewards")
        if self.latencies_ms:
            p50, p99 = percentile(self.latencies_ms, 50), percentile(self.latencies_ms, 99)
            lines.append(f"latency per sample p50 {p50:.2f} ms, p99 {p99:.2f} ms "
                         "(from the start of its scoring to its result; queueing and batching excluded)")
        if self.audited:
            lines.append(f"audit: {self.audit_disagreements} disagreements in {self.audited} audited samples")
        return "\n".join(lines)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least pct% of values at or below it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * pct / 100)) - 1]


def _audit_records(result: ScoredSample, sample: Sample, line: int) -> list[dict[str, Any]]:
    """One record per component whose independent check disagrees with its verdict."""
    return [
        {"id": result.id, "line": line, "verifier": name, "verdict": r.verdict.value, "audit": r.audit.value,
         "gold": sample.answer, "answer": r.answer, "detail": r.detail}
        for name, r in result.components.items()
        if r.audit_disagrees and r.audit is not None
    ]


def score_file(lines: Iterable[str], out: TextIO, scorer: Scorer, progress: tqdm | None = None,
               audit_out: TextIO | None = None) -> Summary:
    """Score JSONL `lines` with `scorer`, writing one record per line to `out` in input order,
    and each disputed verdict to `audit_out`."""
    summary = Summary()
    slots: deque[_Parsed | _InputError] = deque()

    def samples() -> Iterator[Sample]:
        # Every parsed line, error or sample, queues a slot; the scorer only sees samples.
        for item in _parse_lines(lines):
            slots.append(item)
            if isinstance(item, _Parsed):
                yield item.sample

    def emit(record: dict[str, Any]) -> None:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        summary.add(record)
        if progress is not None:
            progress.update(1)

    def flush_errors() -> None:
        while slots and isinstance(slots[0], _InputError):
            emit(slots.popleft().to_record())  # type: ignore[union-attr]

    for result in scorer(samples()):
        flush_errors()
        slot = slots.popleft()
        if not isinstance(slot, _Parsed) or result.id != slot.sample.id:
            raise RuntimeError(f"scorer answered {result.id!r} out of input order")
        record = result.to_record()
        if result.is_input_error:
            record["line"] = slot.line
        emit(record)
        if any(r.audit is not None for r in result.components.values()):
            disputed = _audit_records(result, slot.sample, slot.line)
            summary.audited += 1
            summary.audit_disagreements += bool(disputed)
            if audit_out is not None:
                audit_out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in disputed)
    flush_errors()
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="JSONL file, one sample per line")
    parser.add_argument("--output", required=True, help="JSONL file to write, one record per input line")
    parser.add_argument("--verifier", help="score with this one verifier; its score is the reward")
    parser.add_argument("--workers", type=int, default=1, help="samples scored concurrently (threads; default 1)")
    parser.add_argument("--routing", help="routing YAML (task -> {verifier: weight}); default: built-in routing")
    parser.add_argument("--endpoint", metavar="HOST:PORT",
                        help="score against a running cluster (arbiter serve) instead of in-process")
    parser.add_argument("--application", default="router",
                        help="Ray Serve application for --endpoint (default: router; a standalone server ignores it)")
    parser.add_argument("--token", default=os.environ.get("ARBITER_TOKEN"),
                        help="bearer token for --endpoint (default: $ARBITER_TOKEN)")
    parser.add_argument("--audit", type=float, metavar="FRACTION",
                        help="share of math samples also judged by plain Math-Verify, disagreements to "
                             "OUTPUT.audit.jsonl (default: math.audit_fraction, 0.05)")


def _fail(message: str, status: int) -> int:
    print(f"arbiter score: error: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        return _fail("--workers must be >= 1", 2)
    registry = default_registry()
    if args.audit is not None:
        if not 0 <= args.audit <= 1:
            return _fail(f"--audit must be within [0, 1], got {args.audit}", 2)
        if args.endpoint:
            return _fail("--audit configures in-process scoring; a cluster audits at its math.audit_fraction", 2)
        registry = Registry()
        registry.configure("math", lambda: _audited_math(args.audit))
    try:
        routing = RoutingConfig.load_or_default(args.routing)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return _fail(f"--routing: {exc}", 2)
    if args.endpoint:
        message = missing_extra_message("arbiter score --endpoint", "services")
        if message:
            return _fail(message, MISSING_EXTRA_STATUS)
        scorer: Scorer = EndpointScorer(ClientConfig(endpoint=args.endpoint, application=args.application,
                                                     token=args.token),
                                        SingleVerifierRouting(args.verifier) if args.verifier else routing)
        return _score_input(args, scorer)
    names = set(registry.names())
    if args.verifier is not None and args.verifier not in names:
        return _fail(f"unknown verifier {args.verifier!r} (--verifier); known: {', '.join(sorted(names))}", 2)
    unknown = sorted(routing.verifier_names() - names)
    if unknown and args.verifier is None:
        return _fail(f"--routing names unknown verifier {unknown[0]!r}; known: {', '.join(sorted(names))}", 2)
    return _score_input(args, LocalScorer(routing, registry, only=args.verifier, workers=args.workers))


def _audited_math(fraction: float) -> Any:
    from rewards.math import MathConfig, MathVerifier  # sympy only when math is routed

    return MathVerifier(MathConfig(audit_fraction=fraction))


def audit_path(output: str) -> str:
    """OUTPUT.audit.jsonl: scores.jsonl -> scores.audit.jsonl."""
    return output.removesuffix(".jsonl") + ".audit.jsonl"


def _score_input(args: argparse.Namespace, scorer: Scorer) -> int:
    try:
        with open(args.input, encoding="utf-8") as f:
            total = sum(1 for _ in f)
        started = time.perf_counter()
        with (
            open(args.input, encoding="utf-8") as lines,
            # A lone surrogate (a JSON \u escape in the input, a candidate's text) is written as
            # its JSON escape rather than ending the run.
            open(args.output, "w", encoding="utf-8", errors="backslashreplace") as out,
            open(audit_path(args.output), "w", encoding="utf-8", errors="backslashreplace") as audit_out,
            tqdm(total=total, unit="sample", file=sys.stderr, disable=None) as progress,
        ):
            summary = score_file(lines, out, scorer, progress, audit_out)
    except (OSError, UnicodeDecodeError, VerifierLoadError, EndpointError) as exc:
        return _fail(str(exc), 1)
    print(summary.render(time.perf_counter() - started), file=sys.stderr)
    return 0
