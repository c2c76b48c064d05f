"""The scoring contract every verifier, service and trainer shares.

A verdict is not a fault: a wrong answer is INCORRECT with score 0.0, while a
crashed or timed-out verifier is ERROR/TIMEOUT with score None, so that a fault
is counted and reported instead of silently becoming a zero reward.
"""

from __future__ import annotations

import enum
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the code verifier builds these; the contract itself needs no sandbox
    from sandbox.api import Provenance
    from sandbox.grading.result import TestOutcome


class Verdict(enum.Enum):
    CORRECT = "correct"
    INCORRECT = "incorrect"
    NO_ANSWER = "no_answer"
    NOT_APPLICABLE = "not_applicable"
    TIMEOUT = "timeout"
    ERROR = "error"

    @property
    def is_fault(self) -> bool:
        """The verifier could not judge: the score must not be used as a reward."""
        return self in (Verdict.TIMEOUT, Verdict.ERROR)

    @property
    def has_score(self) -> bool:
        return self not in (Verdict.NOT_APPLICABLE, Verdict.TIMEOUT, Verdict.ERROR)


class SampleError(ValueError):
    """A sample (or its reference) is malformed; `field` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class VerifierResult:
    """One verifier's judgement of one sample.

    `score` is a float for CORRECT/INCORRECT/NO_ANSWER and None for
    NOT_APPLICABLE/TIMEOUT/ERROR; `answer` is the extracted answer, when the
    verifier extracts one; `audit` is an independent check's verdict on the same
    answer, when this sample was audited (the math verifier's second opinion).
    Verifiers that run programs add `tests`, one outcome per test (status, time, and
    for a failure its input, expected and actual output and stderr tail), and
    `provenance`: the backend, limits and toolchain the verdict rests on.
    """

    verdict: Verdict
    score: float | None
    detail: str = ""
    answer: str | None = None
    audit: Verdict | None = None
    # Diagnostics, not the judgement: two results with the same verdict, score and detail are
    # equal whatever the tests' times were.
    tests: tuple[TestOutcome, ...] = field(default=(), compare=False)
    provenance: Provenance | None = field(default=None, compare=False)

    @property
    def audit_disagrees(self) -> bool:
        """The independent check judged the answer and came to the other conclusion."""
        if self.audit is None or self.audit.is_fault:
            return False
        return (self.audit is Verdict.CORRECT) != (self.verdict is Verdict.CORRECT)

    def __post_init__(self) -> None:
        if self.verdict.has_score and self.score is None:
            raise ValueError(f"verdict {self.verdict.value} needs a score")
        if not self.verdict.has_score and self.score is not None:
            raise ValueError(f"verdict {self.verdict.value} cannot carry a score")

    @classmethod
    def correct(cls, score: float = 1.0, detail: str = "", answer: str | None = None) -> VerifierResult:
        return cls(Verdict.CORRECT, score, detail, answer)

    @classmethod
    def incorrect(cls, score: float = 0.0, detail: str = "", answer: str | None = None) -> VerifierResult:
        return cls(Verdict.INCORRECT, score, detail, answer)

    @classmethod
    def no_answer(cls, detail: str = "no answer found") -> VerifierResult:
        return cls(Verdict.NO_ANSWER, 0.0, detail)

    @classmethod
    def not_applicable(cls, detail: str, answer: str | None = None) -> VerifierResult:
        return cls(Verdict.NOT_APPLICABLE, None, detail, answer)

    @classmethod
    def timeout(cls, detail: str) -> VerifierResult:
        return cls(Verdict.TIMEOUT, None, detail)

    @classmethod
    def error(cls, detail: str) -> VerifierResult:
        return cls(Verdict.ERROR, None, detail)

    @classmethod
    def graded(cls, score: float, detail: str = "", answer: str | None = None) -> VerifierResult:
        """A shaped score in [0, 1] (or a penalty <= 0): CORRECT when it is the full 1.0."""
        verdict = Verdict.CORRECT if score >= 1.0 else Verdict.INCORRECT
        return cls(verdict, float(score), detail, answer)


@dataclass(frozen=True)
class Sample:
    """One completion to be scored: the fields of an input JSONL line."""

    id: str
    task: str
    completion: str
    prompt: str | None = None
    answer: str | None = None
    tests: Any = None
    language: str | None = None
    limits: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any) -> Sample:
        """Validate one decoded JSON line; raise SampleError naming the bad field."""
        if not isinstance(raw, dict):
            raise SampleError("<line>", f"expected a JSON object, got {type(raw).__name__}")
        unknown = set(raw) - _SAMPLE_FIELDS
        if unknown:
            raise SampleError(sorted(unknown)[0], "unknown field")
        for name in ("id", "task", "completion"):
            if name not in raw:
                raise SampleError(name, "missing required field")
        sample_id = raw["id"]
        if isinstance(sample_id, int) and not isinstance(sample_id, bool):
            sample_id = str(sample_id)
        if not isinstance(sample_id, str) or not sample_id:
            raise SampleError("id", "must be a non-empty string")
        for name in ("task", "completion"):
            if not isinstance(raw[name], str):
                raise SampleError(name, "must be a string")
        for name in ("prompt", "language"):
            if raw.get(name) is not None and not isinstance(raw[name], str):
                raise SampleError(name, "must be a string")
        for name in ("limits", "metadata"):
            if raw.get(name) is not None and not isinstance(raw[name], dict):
                raise SampleError(name, "must be an object")
        return cls(
            id=sample_id,
            task=raw["task"],
            completion=raw["completion"],
            prompt=raw.get("prompt"),
            answer=reference_text(raw.get("answer")),
            tests=raw.get("tests"),
            language=raw.get("language"),
            limits=raw.get("limits"),
            metadata=raw.get("metadata") or {},
        )


def reference_text(value: Any, field_name: str = "answer") -> str | None:
    """A reference answer as the verifiers read it: a string as it is, a number (Python's or numpy's)
    as its text (a number that keeps the text it was written with, as `arbiter score` reads JSON,
    prints as written); None stays None. Booleans and containers are a SampleError naming `field_name`."""
    if value is None:
        return None
    if isinstance(value, str):
        return str(value)  # a str subclass (numpy.str_) as a plain str
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return str(value)  # numpy's integer and floating scalars are numbers.Real too
    raise SampleError(field_name, f"expected a string or a number, got {type(value).__name__}")


_SAMPLE_FIELDS = {"id", "task", "prompt", "completion", "answer", "tests", "language", "limits", "metadata"}


def describe_exception(exc: BaseException) -> str:
    """`Type: message`, at most 500 characters, even for an exception that cannot print itself."""
    try:
        return f"{type(exc).__name__}: {exc}"[:500]
    except Exception:  # an unprintable exception still has a type
        return type(exc).__name__
