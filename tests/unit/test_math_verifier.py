"""MathVerifier: verdicts, the gold policy, hard time bounds, and the pickling contract."""

from __future__ import annotations

import dataclasses
import os
import pickle
import threading
import time
from collections.abc import Iterator

import pytest

from arbiter.config import from_dict
from rewards.math import MathConfig, MathVerifier
from rewards.registry import default_registry
from rewards.types import Sample, SampleError, Verdict, VerifierResult


def sample(answer: str | None, gold: str | None = "\\frac{1}{2}") -> Sample:
    completion = "<think>\nSome reasoning with \\boxed{0} in it.\n</think>\n"
    completion += f"<answer>\\boxed{{{answer}}}</answer>" if answer is not None else "I give up."
    return Sample(id="s", task="math", completion=completion, answer=gold)


@pytest.fixture(scope="module")
def quick() -> Iterator[MathVerifier]:
    """A one-second deadline, for the pathological inputs."""
    v = MathVerifier(MathConfig(timeout_s=1.0))
    v.warm()
    yield v
    v.close()


def test_correct_answer_scores_one_and_reports_the_answer(math_verifier: MathVerifier) -> None:
    result = math_verifier.score(sample("0.5"))
    assert (result.verdict, result.score, result.answer) == (Verdict.CORRECT, 1.0, "0.5")


def test_wrong_answer_scores_zero(math_verifier: MathVerifier) -> None:
    result = math_verifier.score(sample("\\frac{1}{3}"))
    assert (result.verdict, result.score) == (Verdict.INCORRECT, 0.0)


def test_no_answer_scores_zero_as_no_answer(math_verifier: MathVerifier) -> None:
    result = math_verifier.score(sample(None))
    assert (result.verdict, result.score, result.answer) == (Verdict.NO_ANSWER, 0.0, None)


def test_missing_gold_is_not_applicable(math_verifier: MathVerifier) -> None:
    result = math_verifier.score(sample("1", gold=None))
    assert (result.verdict, result.score) == (Verdict.NOT_APPLICABLE, None)


def test_unparseable_gold_is_not_applicable(math_verifier: MathVerifier) -> None:
    for gold in ("\\frac{1}{", "   "):
        result = math_verifier.score(sample("1", gold=gold))
        assert (result.verdict, result.score) == (Verdict.NOT_APPLICABLE, None), gold


def test_non_string_gold_is_a_sample_error(math_verifier: MathVerifier) -> None:
    with pytest.raises(SampleError) as caught:
        math_verifier.score(Sample(id="s", task="math", completion="\\boxed{1}", answer=5))  # type: ignore[arg-type]
    assert caught.value.field == "answer"


def test_is_deterministic(math_verifier: MathVerifier) -> None:
    samples = [sample(a) for a in ("0.5", "1/2", "\\frac{2}{4}", "0.6", "x")]
    assert [math_verifier.score(s) for s in samples] == [math_verifier.score(s) for s in samples]


def test_pickled_verifier_scores_the_same_with_its_own_workers(math_verifier: MathVerifier) -> None:
    clone = pickle.loads(pickle.dumps(math_verifier))
    try:
        assert clone.worker_pids() == []  # the pool is not pickled; it starts on first use
        assert clone.score(sample("0.5")) == math_verifier.score(sample("0.5"))
        assert set(clone.worker_pids()).isdisjoint(math_verifier.worker_pids())
    finally:
        clone.close()


def test_registry_builds_the_math_verifier() -> None:
    built = default_registry().get("math")
    assert isinstance(built, MathVerifier) and built.reference == "answer"


def test_config_rejects_unknown_keys_and_wrong_types() -> None:
    every_field = {f.name: getattr(MathConfig(), f.name) for f in dataclasses.fields(MathConfig)}
    assert from_dict(MathConfig, every_field) == MathConfig()
    assert from_dict(MathConfig, {"timeout_s": 2, "workers": 3}) == MathConfig(timeout_s=2, workers=3)
    with pytest.raises(ValueError, match=r"^timeout: unknown key"):
        from_dict(MathConfig, {"timeout": 2})
    with pytest.raises(ValueError, match=r"^workers: expected int, got str"):
        from_dict(MathConfig, {"workers": "2"})
    with pytest.raises(ValueError, match=r"^timeout_s: expected a number, got bool"):
        from_dict(MathConfig, {"timeout_s": True})
    with pytest.raises(ValueError, match="positive"):
        MathConfig(timeout_s=0)


def test_concurrent_scoring_from_many_threads(math_verifier: MathVerifier) -> None:
    cases = [("0.5", Verdict.CORRECT), ("0.25", Verdict.INCORRECT), ("\\frac{3}{6}", Verdict.CORRECT)]
    results: dict[int, list[Verdict]] = {}

    def score_all(n: int) -> None:
        results[n] = [math_verifier.score(sample(a)).verdict for a, _ in cases]

    threads = [threading.Thread(target=score_all, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {n: [v for _, v in cases] for n in range(6)}


NESTED_FRACTION = "1"
for _ in range(300):
    NESTED_FRACTION = "\\frac{1}{1+" + NESTED_FRACTION + "}"

PATHOLOGICAL = {
    "power_tower": ("9^{9^{9^{9^{9}}}}", True),
    "huge_factorial": ("(10^{10})!", True),
    "nested_fractions": (NESTED_FRACTION, True),
    "ten_thousand_digits": ("9" * 10_000, False),  # parsed and judged in time: no timeout needed
}


@pytest.mark.parametrize("name", PATHOLOGICAL)
def test_pathological_input_is_bounded_from_a_worker_thread_and_pool_keeps_serving(
    quick: MathVerifier, name: str
) -> None:
    answer, must_time_out = PATHOLOGICAL[name]
    quick.warm()  # replacements of workers killed by the previous case are ready: time only this call
    outcome: dict[str, object] = {}

    def score() -> None:
        start = time.monotonic()
        outcome["result"] = quick.score(sample(answer, gold="5"))
        outcome["elapsed_s"] = time.monotonic() - start

    thread = threading.Thread(target=score)  # gRPC handlers and Ray actors call from non-main threads
    thread.start()
    thread.join(timeout=60)
    result = outcome["result"]
    assert isinstance(result, VerifierResult)
    # The bound itself is the specified behaviour: deadline plus 0.5 s to kill and answer.
    assert outcome["elapsed_s"] <= quick.config.timeout_s + 0.5
    if must_time_out:
        assert (result.verdict, result.score) == (Verdict.TIMEOUT, None)
        assert result.answer == answer
    else:
        assert result.verdict is Verdict.INCORRECT
    assert quick.score(sample("5", gold="5")).verdict is Verdict.CORRECT


def test_crashed_worker_is_an_error_with_detail_and_is_replaced() -> None:
    v = MathVerifier(MathConfig(workers=1, timeout_s=60))
    try:
        v.warm()
        (pid,) = v.worker_pids()
        outcome: list[VerifierResult] = []
        thread = threading.Thread(target=lambda: outcome.append(v.score(sample("9^{9^{9^{9}}}", gold="5"))))
        thread.start()
        time.sleep(0.3)  # let the worker start on the tower
        os.kill(pid, 9)
        thread.join(timeout=30)
        (result,) = outcome
        assert (result.verdict, result.score) == (Verdict.ERROR, None)
        assert "died" in result.detail
        assert v.score(sample("5", gold="5")).verdict is Verdict.CORRECT
        assert v.worker_pids() != [pid]
    finally:
        v.close()


def test_close_leaves_no_worker_processes() -> None:
    v = MathVerifier(MathConfig(workers=1))
    v.warm()
    pids = v.worker_pids()
    v.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)
