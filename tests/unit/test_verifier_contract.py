"""One contract for every registered verifier: built-in, written by anyone, or plugged in.

Picklable, deterministic, a score consistent with its verdict and finite, and a clear answer
to a malformed sample: a SampleError naming the field, or a verdict with a detail; never an
exception of another type. A verifier that cannot even be imported fails here, never skips.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator

import pytest

from rewards.registry import Verifier, default_registry
from rewards.types import Sample, SampleError, Verdict, VerifierResult

NAMES = default_registry().names()

R1_MATH = "<think>\nTwo plus three is five.\n</think>\n<answer>\n\\boxed{5}\n</answer>"
R1_CODE = (
    "<think>\nAdd the two arguments.\n</think>\n<answer>\n"
    "```python\ndef add(a, b):\n    return a + b\n```\n</answer>"
)

# One well-formed sample per reference kind a verifier may declare.
REPRESENTATIVE = {
    "answer": Sample(id="contract-answer", task="math", completion=R1_MATH, prompt="What is 2 + 3?", answer="5"),
    "tests": Sample(
        id="contract-tests",
        task="code",
        completion=R1_CODE,
        prompt="Write add(a, b).",
        tests={"kind": "assert", "test": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]},
        language="python",
    ),
    "none": Sample(id="contract-none", task="format", completion=R1_MATH, prompt="What is 2 + 3?"),
}

# (name, the field it spoils, the sample): references of the wrong type, missing or unparseable.
MALFORMED = [
    ("answer_missing", "answer", Sample(id="m1", task="math", completion=R1_MATH)),
    ("answer_wrong_type", "answer", Sample(id="m2", task="math", completion=R1_MATH, answer=12345)),  # type: ignore[arg-type]
    ("answer_unparseable", "answer", Sample(id="m3", task="math", completion=R1_MATH, answer="\\frac{1}{")),
    ("tests_missing", "tests", Sample(id="m4", task="code", completion=R1_CODE, language="python")),
    ("tests_wrong_type", "tests", Sample(id="m5", task="code", completion=R1_CODE, tests=42, language="python")),
    ("tests_unknown_kind", "tests", Sample(id="m6", task="code", completion=R1_CODE, tests={"kind": "nope"})),
    ("tests_string", "tests", Sample(id="m7", task="code", completion=R1_CODE, tests="assert add(1, 2) == 3")),
    (
        "metadata_wrong_types",
        "metadata",
        Sample(id="m8", task="math", completion=R1_MATH, answer="5", metadata={"correct": "yes", "cot_language": 7}),
    ),
    ("completion_empty", "completion", Sample(id="m9", task="math", completion="", answer="5")),
]


@pytest.fixture(scope="module", params=NAMES)
def verifier(request: pytest.FixtureRequest) -> Iterator[Verifier]:
    yield default_registry().get(request.param)


def _representative(verifier: Verifier) -> Sample:
    return REPRESENTATIVE[verifier.reference]


def _check_result(result: object) -> VerifierResult:
    assert isinstance(result, VerifierResult), f"score() returned {type(result).__name__}"
    assert isinstance(result.verdict, Verdict)
    if result.verdict.has_score:
        assert isinstance(result.score, float) and math.isfinite(result.score), result
    else:
        assert result.score is None and result.detail, f"{result.verdict.value} needs a detail"
    return result


def test_declares_name_version_and_reference_kind(verifier: Verifier) -> None:
    assert verifier.name in NAMES and verifier.version and verifier.reference in REPRESENTATIVE


def test_representative_sample_is_judged_without_fault(verifier: Verifier) -> None:
    result = _check_result(verifier.score(_representative(verifier)))
    assert not result.verdict.is_fault, result.detail


def test_is_deterministic(verifier: Verifier) -> None:
    sample = _representative(verifier)
    first, second = verifier.score(sample), verifier.score(sample)
    assert first == second


def test_pickles_and_still_scores_the_same(verifier: Verifier) -> None:
    clone = pickle.loads(pickle.dumps(verifier))
    try:
        sample = _representative(verifier)
        assert clone.score(sample) == verifier.score(sample)
    finally:
        close = getattr(clone, "close", None)
        if callable(close):
            close()  # a clone may own worker processes of its own


@pytest.mark.parametrize(("case", "spoiled", "sample"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_sample_gets_a_clear_answer(verifier: Verifier, case: str, spoiled: str, sample: Sample) -> None:
    try:
        result = verifier.score(sample)
    except SampleError as exc:
        assert exc.field and exc.message, f"{case}: SampleError must name the field and say what is wrong"
        return
    _check_result(result)
    if spoiled == verifier.reference:
        assert result.verdict is not Verdict.CORRECT, f"{case}: a spoiled {spoiled} cannot be judged correct"
