"""The math verifier inside a bounded worker: compares inline, under the deadline its supervisor enforces.

The supervisor itself (the services scoring worker, which kills at that deadline) is tested in
tests/integration/test_grpc_inline_bounds.py; here the process is declared bounded by hand.
"""

from __future__ import annotations

import resource
import sys
import threading

import pytest

from rewards import _workers
from rewards.math import MathConfig, MathVerifier
from rewards.math.verifier import _growth_limit
from rewards.types import Sample, Verdict

CASES = [("\\frac{1}{2}", "0.5", Verdict.CORRECT), ("3", "4", Verdict.INCORRECT), ("x = 2", "2", Verdict.CORRECT),
         ("{1,2}", "\\{2, 1\\}", Verdict.CORRECT), ("\\sqrt{8}", "2\\sqrt{2}", Verdict.CORRECT),
         ("5", "9" * 10_000, Verdict.INCORRECT)]  # past Python's 4,300-digit guard: compared, not unparsable


def sample(answer: str, gold: str) -> Sample:
    return Sample(id="s", task="math", completion=f"<think>t</think><answer>\\boxed{{{answer}}}</answer>", answer=gold)


@pytest.fixture
def reported(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float | None]]:
    """Declares this process a bounded worker (undone after the test); collects the deadlines reported."""
    seen: list[tuple[str, float | None]] = []
    monkeypatch.setattr(_workers, "_deadline_hook", lambda what, timeout_s: seen.append((what, timeout_s)))
    monkeypatch.setattr(_workers, "_bounded_thread", threading.get_ident())
    return seen


def test_in_a_bounded_worker_math_compares_inline_under_its_own_deadline(reported) -> None:
    digits_guard = sys.get_int_max_str_digits()
    verifier = MathVerifier(MathConfig(timeout_s=3.0, audit_fraction=0.0))
    verifier.warm()
    got = [verifier.score(sample(answer, gold)).verdict for gold, answer, _ in CASES]
    assert got == [want for _, _, want in CASES]
    assert sys.get_int_max_str_digits() == digits_guard  # lifted for the comparison only
    compared = len(CASES) - 2  # 1/2 vs 0.5 and 3 vs 4 are plain numbers: compared exactly, no sympy
    assert reported == [("math comparison", 3.0), ("math comparison", None)] * compared
    assert verifier.worker_pids() == []  # no pool of its own


def test_an_audit_is_a_second_bounded_comparison(reported) -> None:
    verifier = MathVerifier(MathConfig(timeout_s=3.0, audit_fraction=1.0))
    result = verifier.score(sample("\\sqrt{8}", "2\\sqrt{2}"))
    assert (result.verdict, result.audit) == (Verdict.CORRECT, Verdict.CORRECT)
    assert reported == [("math comparison", 3.0), ("math comparison", None)] * 2


def test_inline_and_pool_comparisons_agree(reported) -> None:
    inline = MathVerifier()
    inline_results = [inline.score(sample(answer, gold)) for gold, answer, _ in CASES]
    _workers._deadline_hook = None  # the fixture's monkeypatch still restores it afterwards
    pooled = MathVerifier(MathConfig(workers=1))
    try:
        assert [pooled.score(sample(answer, gold)) for gold, answer, _ in CASES] == inline_results
    finally:
        pooled.close()


def test_bounded_outside_a_bounded_worker_is_refused() -> None:
    assert not _workers.in_bounded_worker()
    with pytest.raises(RuntimeError, match="not a declared bounded worker"), _workers.bounded("x", 1.0):
        pass


def test_other_threads_of_a_bounded_worker_compare_in_the_pool(reported) -> None:
    verifier = MathVerifier(MathConfig(workers=1, audit_fraction=0.0))
    results = []
    try:
        thread = threading.Thread(target=lambda: results.append(verifier.score(sample("\\sqrt{8}", "2\\sqrt{2}"))))
        thread.start()
        thread.join(120)
        assert results[0].verdict is Verdict.CORRECT
        assert reported == []  # nothing was run inline, so no deadline was reported
        assert len(verifier.worker_pids()) == 1
    finally:
        verifier.close()


def test_inline_comparison_may_not_grow_memory_past_its_limit() -> None:
    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(MemoryError), _growth_limit(64):
        bytearray(512 * 1024 * 1024)
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert len(bytearray(128 * 1024 * 1024)) == 128 * 1024 * 1024  # the limit is gone again
