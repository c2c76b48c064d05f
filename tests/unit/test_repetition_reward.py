"""N-gram repetition penalty (Yeo et al. 2025, App. C.2), checked against TRL's implementation."""

from __future__ import annotations

import pytest
from trl.rewards import get_repetition_penalty_reward

from rewards.repetition import RepetitionPenaltyConfig, RepetitionPenaltyVerifier
from rewards.types import Sample, Verdict


def _score(text: str, **config):
    return RepetitionPenaltyVerifier(RepetitionPenaltyConfig(**config)).score(Sample(id="s", task="x", completion=text))


def _trl_penalty(text: str, ngram_size: int, max_penalty: float) -> float:
    """TRL's penalty over token ids, fed one id per lower-cased word: the same formula on words."""
    ids: dict[str, int] = {}
    word_ids = [ids.setdefault(word, len(ids)) for word in text.lower().split()]
    return get_repetition_penalty_reward(ngram_size, max_penalty)([word_ids])[0]


TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "let me check. let me check. let me check. let me check.",
    "Wait Wait wait wait wait wait",
    "a b c a b c a b d",
    "one two",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize(("ngram_size", "max_penalty"), [(3, -1.0), (2, -0.5), (1, -2.0)])
def test_penalty_matches_trl(text: str, ngram_size: int, max_penalty: float) -> None:
    result = _score(text, ngram_size=ngram_size, max_penalty=max_penalty)
    assert result.score == pytest.approx(_trl_penalty(text, ngram_size, max_penalty))


def test_text_without_repeats_is_correct_with_no_penalty() -> None:
    result = _score(TEXTS[0])
    assert result.score == 0.0 and result.verdict is Verdict.CORRECT


def test_looping_text_approaches_max_penalty() -> None:
    result = _score("so the answer is " * 200, max_penalty=-1.0)
    assert result.verdict is Verdict.INCORRECT
    assert -1.0 <= result.score < -0.99
    assert "repeat" in result.detail


def test_text_shorter_than_one_ngram_has_no_penalty() -> None:
    result = _score("one two", ngram_size=3)
    assert result.score == 0.0 and result.verdict is Verdict.CORRECT


def test_positive_max_penalty_is_rejected() -> None:
    with pytest.raises(ValueError):
        RepetitionPenaltyConfig(max_penalty=0.5)
    with pytest.raises(ValueError):
        RepetitionPenaltyConfig(ngram_size=0)
