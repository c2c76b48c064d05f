"""Protobuf messages <-> rewards and sandbox dataclasses: the only place the two meet.

Everything inward of the gRPC edge (workers, cache, composition, the trainer)
sees plain dataclasses. Decoding validates: a malformed message raises
SampleError naming the wire field (``sample.tests_json``), which the servicer
turns into INVALID_ARGUMENT or a per-item error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from arbiter.v1 import common_pb2, sandbox_pb2, verifier_pb2
from rewards.compose import ScoredSample
from rewards.routing import RoutingConfig
from rewards.types import Sample, SampleError, Verdict, VerifierResult
from sandbox.api import Limits, Provenance, RunRequest, RunResult, Status, encodable
from sandbox.grading.result import Outcome, TestOutcome

_VERDICT_TO_PB = {
    Verdict.CORRECT: common_pb2.VERDICT_CORRECT,
    Verdict.INCORRECT: common_pb2.VERDICT_INCORRECT,
    Verdict.NO_ANSWER: common_pb2.VERDICT_NO_ANSWER,
    Verdict.NOT_APPLICABLE: common_pb2.VERDICT_NOT_APPLICABLE,
    Verdict.TIMEOUT: common_pb2.VERDICT_TIMEOUT,
    Verdict.ERROR: common_pb2.VERDICT_ERROR,
}
_VERDICT_FROM_PB = {v: k for k, v in _VERDICT_TO_PB.items()}

_REFERENCE_TO_PB = {
    "answer": verifier_pb2.REFERENCE_ANSWER,
    "tests": verifier_pb2.REFERENCE_TESTS,
    "none": verifier_pb2.REFERENCE_NONE,
}
_REFERENCE_FROM_PB = {v: k for k, v in _REFERENCE_TO_PB.items()}

_STATUS_TO_PB = {
    Status.OK: sandbox_pb2.RUN_STATUS_OK,
    Status.RUNTIME_ERROR: sandbox_pb2.RUN_STATUS_RUNTIME_ERROR,
    Status.COMPILE_ERROR: sandbox_pb2.RUN_STATUS_COMPILE_ERROR,
    Status.TIME_LIMIT: sandbox_pb2.RUN_STATUS_TIME_LIMIT,
    Status.MEMORY_LIMIT: sandbox_pb2.RUN_STATUS_MEMORY_LIMIT,
    Status.OUTPUT_LIMIT: sandbox_pb2.RUN_STATUS_OUTPUT_LIMIT,
    Status.SANDBOX_ERROR: sandbox_pb2.RUN_STATUS_SANDBOX_ERROR,
}
_STATUS_FROM_PB = {v: k for k, v in _STATUS_TO_PB.items()}


def verdict_to_proto(verdict: Verdict) -> int:
    return _VERDICT_TO_PB[verdict]


def verdict_from_proto(value: int, field_name: str = "verdict") -> Verdict:
    if value not in _VERDICT_FROM_PB:
        raise SampleError(field_name, f"unknown or unspecified verdict {value}")
    return _VERDICT_FROM_PB[value]


def reference_to_proto(reference: str) -> int:
    return _REFERENCE_TO_PB[reference]


def reference_from_proto(value: int) -> str:
    if value not in _REFERENCE_FROM_PB:
        raise SampleError("reference", f"unknown or unspecified reference {value}")
    return _REFERENCE_FROM_PB[value]


# --- samples -------------------------------------------------------------------------------


def _dump_json(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _load_json(text: str, field_name: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SampleError(field_name, f"not valid JSON: {exc.msg} at position {exc.pos}") from None


_WIRE_NAMES = {"tests": "tests_json", "limits": "limits_json", "metadata": "metadata_json"}
_SAMPLE_NAMES = {v: k for k, v in _WIRE_NAMES.items()}


def field_to_wire(name: str) -> str:
    """A rewards.Sample field name as the request names it: "tests" -> "sample.tests_json"."""
    return f"sample.{_WIRE_NAMES.get(name, name)}"


def field_from_wire(name: str) -> str:
    """The inverse of field_to_wire; names outside the sample ("verifier") pass through."""
    if not name.startswith("sample."):
        return name
    bare = name.removeprefix("sample.")
    return _SAMPLE_NAMES.get(bare, bare)


def sample_to_proto(sample: Sample) -> verifier_pb2.Sample:
    msg = verifier_pb2.Sample(
        id=sample.id,
        task=sample.task,
        completion=sample.completion,
        tests_json=_dump_json(sample.tests),
        limits_json=_dump_json(sample.limits),
        metadata_json=_dump_json(sample.metadata or None),
    )
    for name in ("prompt", "answer", "language"):
        if getattr(sample, name) is not None:
            setattr(msg, name, getattr(sample, name))
    return msg


def sample_from_proto(msg: verifier_pb2.Sample) -> Sample:
    """Decode and validate; a SampleError names the wire field, e.g. ``sample.limits_json``."""
    raw: dict[str, Any] = {"id": msg.id, "task": msg.task, "completion": msg.completion}
    for name in ("prompt", "answer", "language"):
        if msg.HasField(name):
            raw[name] = getattr(msg, name)
    for name, wire in _WIRE_NAMES.items():
        value = _load_json(getattr(msg, wire), f"sample.{wire}")
        if value is not None:
            raw[name] = value
    if not msg.id:
        raise SampleError("sample.id", "must be a non-empty string")
    if not msg.task:
        raise SampleError("sample.task", "must be a non-empty string")
    try:
        return Sample.from_dict(raw)
    except SampleError as exc:
        raise SampleError(field_to_wire(exc.field), exc.message) from None


# --- results -------------------------------------------------------------------------------


# A result's texts quote the completion (an extracted answer, a program's exception), which may
# hold what no protobuf string can (a lone surrogate from a JSON escape): one such sample must not
# fail its batch, nor the cached copy of its result every retry, so each text is made encodable here.


_TEST_TEXTS = ("detail", "input", "expected", "actual", "stderr_tail")


def test_outcome_to_proto(outcome: TestOutcome) -> sandbox_pb2.TestResult:
    msg = sandbox_pb2.TestResult(index=outcome.index, status=sandbox_pb2.TestStatus.Value(
        f"TEST_STATUS_{outcome.outcome.name}"), **{name: encodable(getattr(outcome, name)) for name in _TEST_TEXTS})
    if outcome.time_s is not None:
        msg.time_s = outcome.time_s
    return msg


def test_outcome_from_proto(msg: sandbox_pb2.TestResult, field_name: str) -> TestOutcome:
    name = sandbox_pb2.TestStatus.Name(msg.status).removeprefix("TEST_STATUS_")
    if name not in Outcome.__members__:
        raise SampleError(f"{field_name}.status", "must be set")
    return TestOutcome(msg.index, Outcome[name], time_s=msg.time_s if msg.HasField("time_s") else None,
                       **{text: getattr(msg, text) for text in _TEST_TEXTS})


def provenance_to_proto(provenance: Provenance) -> sandbox_pb2.Provenance:
    return sandbox_pb2.Provenance(backend=provenance.backend, isolation=provenance.isolation,
                                  language=provenance.language, toolchain=provenance.toolchain,
                                  limits=limits_to_proto(provenance.limits), image_id=provenance.image_id)


def provenance_from_proto(msg: sandbox_pb2.Provenance, field_name: str) -> Provenance:
    try:
        limits = limits_from_proto(msg.limits)
    except SampleError as exc:
        raise SampleError(f"{field_name}.{exc.field}", exc.message) from None
    return Provenance(msg.backend, msg.isolation, msg.language, msg.toolchain, limits,
                      msg.image_id if msg.HasField("image_id") else None)


def result_to_proto(result: VerifierResult) -> verifier_pb2.VerifierResult:
    msg = verifier_pb2.VerifierResult(verdict=verdict_to_proto(result.verdict), detail=encodable(result.detail),
                                      tests=[test_outcome_to_proto(t) for t in result.tests])
    if result.score is not None:
        msg.score = result.score
    if result.answer is not None:
        msg.answer = encodable(result.answer)
    if result.audit is not None:
        msg.audit = verdict_to_proto(result.audit)
    if result.provenance is not None:
        msg.provenance.CopyFrom(provenance_to_proto(result.provenance))
    return msg


def result_from_proto(msg: verifier_pb2.VerifierResult, field_name: str = "result") -> VerifierResult:
    verdict = verdict_from_proto(msg.verdict, f"{field_name}.verdict")
    score = msg.score if msg.HasField("score") else None
    answer = msg.answer if msg.HasField("answer") else None
    audit = verdict_from_proto(msg.audit, f"{field_name}.audit") if msg.audit else None
    tests = tuple(test_outcome_from_proto(t, f"{field_name}.tests[{i}]") for i, t in enumerate(msg.tests))
    provenance = provenance_from_proto(msg.provenance, f"{field_name}.provenance") \
        if msg.HasField("provenance") else None
    try:
        return VerifierResult(verdict, score, msg.detail, answer, audit, tests, provenance)
    except ValueError as exc:
        raise SampleError(f"{field_name}.score", str(exc)) from None


def scored_to_proto(scored: ScoredSample, cached: Iterable[str] = ()) -> verifier_pb2.ScoreResult:
    cached = set(cached)
    msg = verifier_pb2.ScoreResult(
        id=encodable(scored.id or ""),
        verdict=verdict_to_proto(scored.verdict),
        elapsed_ms=scored.elapsed_ms,
        detail=encodable(scored.detail),
        components=[
            verifier_pb2.Component(verifier=name, result=result_to_proto(r), cached=name in cached)
            for name, r in scored.components.items()
        ],
    )
    if scored.reward is not None:
        msg.reward = scored.reward
    if scored.error_field is not None:
        msg.error.CopyFrom(verifier_pb2.FieldError(field=scored.error_field, message=encodable(scored.detail)))
    return msg


def input_error_to_proto(sample_id: str, error: SampleError) -> verifier_pb2.ScoreResult:
    """The result of a request that could not be scored: an explicit ERROR naming the field."""
    return scored_to_proto(ScoredSample.input_error(sample_id or None, error))


def scored_from_proto(msg: verifier_pb2.ScoreResult) -> ScoredSample:
    components = {
        c.verifier: result_from_proto(c.result, f"components[{i}].result") for i, c in enumerate(msg.components)
    }
    is_error = msg.HasField("error")
    return ScoredSample(
        id=msg.id or None,
        reward=msg.reward if msg.HasField("reward") else None,
        verdict=verdict_from_proto(msg.verdict),
        components=components,
        elapsed_ms=msg.elapsed_ms,
        detail=msg.error.message if is_error else msg.detail,
        error_field=msg.error.field if is_error else None,
    )


def component_of(reply: verifier_pb2.ScoreResult, verifier: str) -> VerifierResult:
    """`verifier`'s result in a reply. A reply to a request naming `verifier` alone that lacks it
    faulted before it could answer (its worker was killed or died), so the reply's verdict stands in;
    in a reply to several verifiers that stand-in may be another verifier's fault."""
    for component in reply.components:
        if component.verifier == verifier:
            return result_from_proto(component.result)
    verdict = verdict_from_proto(reply.verdict)
    if verdict is Verdict.TIMEOUT:
        return VerifierResult.timeout(reply.detail)
    return VerifierResult.error(reply.detail or f"no result for verifier {verifier!r}")


def cached_names(msg: verifier_pb2.ScoreResult) -> list[str]:
    return [c.verifier for c in msg.components if c.cached]


# --- catalogue -----------------------------------------------------------------------------


def verifier_info(name: str, version: str, reference: str, address: str = "") -> verifier_pb2.VerifierInfo:
    return verifier_pb2.VerifierInfo(
        name=name, version=version, reference=reference_to_proto(reference), address=address
    )


def routing_to_proto(routing: RoutingConfig) -> list[verifier_pb2.TaskRoute]:
    return [
        verifier_pb2.TaskRoute(
            task=task,
            verifiers=[verifier_pb2.TaskRoute.Weighted(verifier=wv.verifier, weight=wv.weight) for wv in route],
        )
        for task, route in sorted(routing.tasks.items())
    ]


def cache_stats_to_proto(stats: Mapping[str, int]) -> verifier_pb2.CacheStats:
    lookups = stats["hits"] + stats["misses"]
    return verifier_pb2.CacheStats(
        hits=stats["hits"],
        misses=stats["misses"],
        entries=stats["entries"],
        capacity=stats["capacity"],
        hit_rate=stats["hits"] / lookups if lookups else 0.0,
    )


# --- sandbox -------------------------------------------------------------------------------

LIMIT_FIELDS = tuple(Limits.__dataclass_fields__)


def limits_from_proto(msg: sandbox_pb2.Limits) -> Limits:
    given = {name: getattr(msg, name) for name in LIMIT_FIELDS if msg.HasField(name)}
    try:
        return Limits(**given)
    except ValueError as exc:
        bad = str(exc).split()[0].removeprefix("Limits.")
        raise SampleError(f"limits.{bad}", str(exc)) from None


def limits_to_proto(limits: Limits) -> sandbox_pb2.Limits:
    return sandbox_pb2.Limits(**{name: getattr(limits, name) for name in LIMIT_FIELDS})


def run_request_from_proto(msg: sandbox_pb2.ExecuteRequest) -> RunRequest:
    if not msg.language:
        raise SampleError("language", "must be a non-empty string")
    return RunRequest(
        language=msg.language,
        source=msg.source,
        stdin=msg.stdin,
        limits=limits_from_proto(msg.limits),
        files=dict(msg.files),
        result_fd=msg.result_fd,
    )


def run_result_to_proto(result: RunResult) -> sandbox_pb2.ExecuteResponse:
    msg = sandbox_pb2.ExecuteResponse(
        status=_STATUS_TO_PB[result.status],
        stdout=result.stdout,
        stderr=result.stderr,
        wall_time_s=result.wall_time_s,
        cpu_time_s=result.cpu_time_s,
        detail=result.detail,
    )
    for name in ("exit_code", "signal", "peak_memory_mib", "result_bytes"):
        if getattr(result, name) is not None:
            setattr(msg, name, getattr(result, name))
    return msg


def run_result_from_proto(msg: sandbox_pb2.ExecuteResponse) -> RunResult:
    return RunResult(
        status=_STATUS_FROM_PB[msg.status],
        exit_code=msg.exit_code if msg.HasField("exit_code") else None,
        signal=msg.signal if msg.HasField("signal") else None,
        stdout=msg.stdout,
        stderr=msg.stderr,
        wall_time_s=msg.wall_time_s,
        cpu_time_s=msg.cpu_time_s,
        peak_memory_mib=msg.peak_memory_mib if msg.HasField("peak_memory_mib") else None,
        detail=msg.detail,
        result_bytes=msg.result_bytes if msg.HasField("result_bytes") else None,
    )


# --- grading -------------------------------------------------------------------------------

_FENCE_BREAKERS = ("</think>",)


def grade_sample_from_proto(msg: sandbox_pb2.GradeRequest) -> Sample:
    """A Grade request as the code verifier's sample: the source as the completion's one fenced block."""
    if not msg.language:
        raise SampleError("language", "must be a non-empty string")
    if any(line.strip().startswith("```") for line in msg.source.splitlines()) or \
            any(b in msg.source for b in _FENCE_BREAKERS):
        raise SampleError("source", "contains a ``` fence line or </think>, which the code verifier's "
                          "extraction would cut at")
    tests = _load_json(msg.tests_json, "tests_json")
    limits: dict[str, Any] = {}
    if msg.HasField("time_s"):
        limits["time_s"] = msg.time_s
    if msg.HasField("memory_mib"):
        limits["memory_mib"] = msg.memory_mib
    return Sample(id="grade", task="code", completion=f"```{msg.language}\n{msg.source}\n```",
                  tests=tests, language=msg.language, limits=limits or None)


def grade_field_to_wire(name: str) -> str:
    """The code verifier names Sample fields ("tests.cases", "limits.time_s"); Grade's are flatter."""
    head, _, rest = name.partition(".")
    if head == "tests":
        return "tests_json" + (f".{rest}" if rest else "")
    if head == "limits" and rest:
        return rest
    return name


def grade_response(scored: ScoredSample) -> sandbox_pb2.GradeResponse:
    msg = sandbox_pb2.GradeResponse(verdict=verdict_to_proto(scored.verdict), detail=encodable(scored.detail))
    result = scored.components.get("code")
    if result is not None:
        msg.detail = encodable(result.detail)
        msg.tests.extend(test_outcome_to_proto(t) for t in result.tests)
        if result.provenance is not None:
            msg.provenance.CopyFrom(provenance_to_proto(result.provenance))
    if scored.reward is not None:
        msg.score = scored.reward
    return msg
