"""The math verifier with workers=0: compares in the calling process, under the deadline it declares.

The host that enforces that deadline (the services' scoring worker, which kills at it) is tested in
tests/integration/test_grpc_inline_bounds.py.
"""

from __future__ import annotations

import resource
import sys

import pytest

from rewards.math import MathConfig, MathVerifier
from rewards.math.verifier import _growth_limit
from rewards.pool import Step
from rewards.types import Sample, Verdict

CASES = [("\\frac{1}{2}", "0.5", Verdict.CORRECT), ("3", "4", Verdict.INCORRECT), ("x = 2", "2", Verdict.CORRECT),
         ("{1,2}", "\\{2, 1\\}", Verdict.CORRECT), ("\\sqrt{8}", "2\\sqrt{2}", Verdict.CORRECT),
         ("5", "9" * 10_000, Verdict.INCORRECT)]  # past Python's 4,300-digit guard: compared, not unparsable


def sample(answer: str, gold: str) -> Sample:
    return Sample(id="s", task="math", completion=f"<think>t</think><answer>\\boxed{{{answer}}}</answer>", answer=gold)


def test_without_workers_math_compares_inline_and_declares_its_deadline() -> None:
    digits_guard = sys.get_int_max_str_digits()
    verifier = MathVerifier(MathConfig(workers=0, timeout_s=3.0, audit_fraction=0.0))
    verifier.warm()
    got = [verifier.score(sample(answer, gold)).verdict for gold, answer, _ in CASES]
    assert got == [want for _, _, want in CASES]
    assert sys.get_int_max_str_digits() == digits_guard  # lifted for the comparison only
    assert verifier.deadline == Step("math comparison", 3.0)
    assert verifier.worker_pids() == []  # no pool of its own


def test_a_verifier_with_its_own_pool_declares_no_deadline() -> None:
    assert MathVerifier(MathConfig(workers=1)).deadline is None


def test_an_inline_audit_is_a_second_comparison() -> None:
    verifier = MathVerifier(MathConfig(workers=0, timeout_s=3.0, audit_fraction=1.0))
    result = verifier.score(sample("\\sqrt{8}", "2\\sqrt{2}"))
    assert (result.verdict, result.audit) == (Verdict.CORRECT, Verdict.CORRECT)


def test_inline_and_pool_comparisons_agree() -> None:
    inline = MathVerifier(MathConfig(workers=0))
    inline_results = [inline.score(sample(answer, gold)) for gold, answer, _ in CASES]
    pooled = MathVerifier(MathConfig(workers=1))
    try:
        assert [pooled.score(sample(answer, gold)) for gold, answer, _ in CASES] == inline_results
    finally:
        pooled.close()


def test_negative_workers_are_rejected() -> None:
    with pytest.raises(ValueError, match="workers"):
        MathConfig(workers=-1)


def test_inline_comparison_may_not_grow_memory_past_its_limit() -> None:
    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(MemoryError), _growth_limit(64):
        bytearray(512 * 1024 * 1024)
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert len(bytearray(128 * 1024 * 1024)) == 128 * 1024 * 1024  # the limit is gone again
