"""Weighted composition of verifier results into one sample reward.

Rules, in order:
1. A faulted component (TIMEOUT or ERROR) makes the whole reward None with that
   fault as the verdict: a fault is never turned into 0.
2. A NOT_APPLICABLE primary (first-routed, accuracy) component makes the whole sample
   NOT_APPLICABLE with reward None: a sample whose correctness cannot be judged (say, an
   unparseable gold answer) must not enter training on its shaping terms alone.
3. Other NOT_APPLICABLE components are left out of the sum.
4. reward = sum(weight * score) over the components that have a score, and the verdict is
   the primary component's verdict.
Every component is reported, whatever the outcome.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rewards.registry import Registry, default_registry
from rewards.routing import DEFAULT_ROUTING, RoutingConfig
from rewards.types import Sample, SampleError, Verdict, VerifierResult, describe_exception


def _component_record(result: VerifierResult) -> dict[str, Any]:
    record: dict[str, Any] = {"score": result.score, "verdict": result.verdict.value, "detail": result.detail}
    if result.audit is not None:
        record["audit"] = result.audit.value
    if result.tests:
        record["tests"] = [t.to_record() for t in result.tests]
    if result.provenance is not None:
        record["provenance"] = result.provenance.to_record()
    return record


@dataclass(frozen=True)
class ScoredSample:
    """The outcome for one input sample: a reward and its components, or an input error."""

    id: str | None
    reward: float | None
    verdict: Verdict
    components: dict[str, VerifierResult] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    """From the start of the sample's scoring to its result, in the process that scored it."""
    detail: str = ""
    error_field: str | None = None

    @property
    def is_input_error(self) -> bool:
        return self.error_field is not None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "reward": self.reward,
            "verdict": self.verdict.value,
            "components": {name: _component_record(r) for name, r in self.components.items()},
            "elapsed_ms": round(self.elapsed_ms, 3),
        }
        if self.detail:
            record["detail"] = self.detail
        if self.error_field is not None:
            record["error"] = {"field": self.error_field, "message": self.detail}
        return record

    @classmethod
    def input_error(cls, sample_id: str | None, error: SampleError, elapsed_ms: float = 0.0) -> ScoredSample:
        return cls(sample_id, None, Verdict.ERROR, {}, elapsed_ms, error.message, error.field)


def verdict_of(components: list[tuple[str, float, VerifierResult]]) -> tuple[Verdict, str]:
    """The sample's verdict and detail under rules 1, 2 and 4, without a reward: what a server
    answers when its caller named the verifiers and composes the reward itself."""
    faults = [(name, r) for name, _, r in components if r.verdict.is_fault]
    if faults:
        errors = [f for f in faults if f[1].verdict is Verdict.ERROR]
        name, result = (errors or faults)[0]
        return result.verdict, f"{name}: {result.detail}"
    primary_name, _, primary = components[0]
    if primary.verdict is Verdict.NOT_APPLICABLE:
        return Verdict.NOT_APPLICABLE, f"{primary_name}: {primary.detail}"
    return primary.verdict, ""


def compose(components: list[tuple[str, float, VerifierResult]]) -> tuple[float | None, Verdict, str]:
    """Combine (name, weight, result) triples, the primary first, into (reward, verdict, detail)."""
    verdict, detail = verdict_of(components)
    if verdict.is_fault or verdict is Verdict.NOT_APPLICABLE:
        return None, verdict, detail
    return sum(w * r.score for _, w, r in components if r.score is not None), verdict, detail


def run_verifier(verifier_name: str, sample: Sample, registry: Registry) -> VerifierResult:
    """Score with one verifier; a crash inside it is recorded as an ERROR verdict, not a 0."""
    verifier = registry.get(verifier_name)
    try:
        return verifier.score(sample)
    except SampleError:
        raise
    except Exception as exc:  # a verifier bug is a counted fault with its cause, never a reward
        return VerifierResult.error(describe_exception(exc))


def score_sample(
    sample: Sample,
    routing: RoutingConfig = DEFAULT_ROUTING,
    registry: Registry | None = None,
    only: str | tuple[str, ...] | None = None,
) -> ScoredSample:
    """Score one sample with its task's routed verifiers, or with `only` (one name or several, each at
    weight 1)."""
    registry = registry or default_registry()
    start = time.perf_counter()
    try:
        if only:
            route = [(name, 1.0) for name in ((only,) if isinstance(only, str) else only)]
        else:
            route = [(wv.verifier, wv.weight) for wv in routing.route(sample.task)]
        components = [(name, weight, run_verifier(name, sample, registry)) for name, weight in route]
    except SampleError as exc:
        return ScoredSample.input_error(sample.id, exc, (time.perf_counter() - start) * 1000)
    reward, verdict, detail = compose(components)  # with one name in `only`, its own reward and verdict
    return ScoredSample(
        id=sample.id,
        reward=reward,
        verdict=verdict,
        components={name: r for name, _, r in components},
        elapsed_ms=(time.perf_counter() - start) * 1000,
        detail=detail,
    )
