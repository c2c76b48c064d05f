"""Cosine-scaled length reward (Yeo et al. 2025) and DAPO's soft overlong punishment (Yu et al. 2025)."""

from __future__ import annotations

import math

import pytest
from trl.rewards import get_soft_overlong_punishment

from rewards.length import CosineLengthConfig, CosineLengthVerifier, SoftOverlongConfig, SoftOverlongVerifier
from rewards.types import Sample, SampleError, Verdict


def _sample(length: int, correct: bool | None = None, completion: str | None = None) -> Sample:
    metadata = {} if correct is None else {"correct": correct}
    return Sample(id="s", task="math", completion=completion or "x" * length, answer="1", metadata=metadata)


def _open_r1_cosine(length: int, correct: bool, cfg: CosineLengthConfig) -> float:
    """open-r1's get_cosine_scaled_reward, transcribed: the peer formula this verifier must match."""
    progress = length / cfg.max_len_chars
    cosine = math.cos(progress * math.pi)
    if correct:
        min_value, max_value = cfg.min_value_correct, cfg.max_value_correct
    else:
        min_value, max_value = cfg.max_value_wrong, cfg.min_value_wrong
    return min_value + 0.5 * (max_value - min_value) * (1.0 + cosine)


@pytest.mark.parametrize("correct", [True, False])
@pytest.mark.parametrize("length", [0, 1, 100, 250, 500, 999, 1000])
def test_cosine_matches_open_r1_within_the_budget(length: int, correct: bool) -> None:
    cfg = CosineLengthConfig()
    result = CosineLengthVerifier(cfg).score(_sample(length, correct))
    assert result.score == pytest.approx(_open_r1_cosine(length, correct, cfg))
    assert result.verdict is (Verdict.CORRECT if correct else Verdict.INCORRECT)


def test_shorter_correct_answers_earn_more_and_longer_wrong_ones_are_punished_less() -> None:
    verifier = CosineLengthVerifier()
    correct = [verifier.score(_sample(n, True)).score for n in (0, 300, 600, 1000)]
    wrong = [verifier.score(_sample(n, False)).score for n in (0, 300, 600, 1000)]
    assert correct == sorted(correct, reverse=True) and correct[0] == 1.0 and correct[-1] == 0.5
    assert wrong == sorted(wrong) and wrong[0] == -1.0 and wrong[-1] == -0.5


def test_cosine_clamps_lengths_beyond_the_budget() -> None:
    verifier = CosineLengthVerifier()
    # open-r1's unclamped cosine would give a 2x-budget wrong answer the same -1.0 as an empty one.
    assert verifier.score(_sample(2000, False)).score == pytest.approx(-0.5)
    assert verifier.score(_sample(5000, True)).score == pytest.approx(0.5)


def test_exceed_length_score_applies_past_the_budget() -> None:
    verifier = CosineLengthVerifier(CosineLengthConfig(exceed_length_score=-10.0))
    assert verifier.score(_sample(1001, True)).score == -10.0
    assert verifier.score(_sample(1000, True)).score == pytest.approx(0.5)


def test_correctness_is_asked_of_the_configured_verifier_when_metadata_lacks_it() -> None:
    # The strict format verifier stands in as the judge: a real registered verifier, no math start-up.
    verifier = CosineLengthVerifier(CosineLengthConfig(correctness_verifier="format"))
    good = verifier.score(_sample(0, completion="<think>a</think><answer>1</answer>"))
    bad = verifier.score(_sample(0, completion="just text"))
    assert good.verdict is Verdict.CORRECT and good.score > 0.5 and "format:" in good.detail
    assert bad.verdict is Verdict.INCORRECT and bad.score < -0.5


def test_not_applicable_judgement_is_passed_on() -> None:
    verifier = CosineLengthVerifier(CosineLengthConfig(correctness_verifier="language"))
    result = verifier.score(_sample(0, completion="no chain of thought"))
    assert result.verdict is Verdict.NOT_APPLICABLE and result.score is None


def test_non_boolean_metadata_correct_is_a_sample_error() -> None:
    with pytest.raises(SampleError) as err:
        CosineLengthVerifier().score(Sample(id="s", task="math", completion="x", metadata={"correct": "yes"}))
    assert err.value.field == "metadata.correct"


def test_cosine_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        CosineLengthConfig(max_len_chars=0)
    with pytest.raises(ValueError):
        CosineLengthConfig(min_value_wrong=float("nan"))


@pytest.mark.parametrize("length", [0, 50, 80, 81, 90, 99, 100, 101, 500])
def test_overlong_matches_trl_soft_overlong_punishment(length: int) -> None:
    peer = get_soft_overlong_punishment(max_completion_len=100, soft_punish_cache=20)
    expected = peer([[0] * length])[0]
    result = SoftOverlongVerifier(SoftOverlongConfig(max_len_chars=100, cache_len_chars=20)).score(_sample(length))
    assert result.score == pytest.approx(expected)
    assert result.verdict is (Verdict.CORRECT if expected == 0.0 else Verdict.INCORRECT)


def test_overlong_without_buffer_is_a_hard_step() -> None:
    verifier = SoftOverlongVerifier(SoftOverlongConfig(max_len_chars=10, cache_len_chars=0))
    assert verifier.score(_sample(10)).score == 0.0
    assert verifier.score(_sample(11)).score == -1.0


def test_overlong_config_rejects_a_buffer_larger_than_the_budget() -> None:
    with pytest.raises(ValueError):
        SoftOverlongConfig(max_len_chars=10, cache_len_chars=11)
