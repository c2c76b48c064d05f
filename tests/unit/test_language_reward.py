"""Language consistency (DeepSeek-R1 §2.3.3): the share of CoT words in the target language."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from langdetect.detector_factory import PROFILES_DIRECTORY

from rewards.language import LanguageConsistencyConfig, LanguageConsistencyVerifier
from rewards.types import Sample, SampleError, Verdict

ENGLISH = (
    "Okay, so I need to find x. Hmm. Let's see. If 2x + 3 = 7, then 2x = 4. So x = 2. "
    "Wait, let me verify: 2*2+3 = 7. Yes, that works."
)
CHINESE = "我们先计算前十个整数的和。等等，让我再检查一下。所以总和是五十五。"
FRENCH = (
    "Calculons la somme des dix premiers entiers. Attendez, vérifions encore une fois. "
    "Donc le total est cinquante-cinq."
)
JAPANESE = "まず最初の十個の整数の和を計算します。もう一度確認しましょう。答えは五十五です。"


def _score(cot: str, language: str | None = None, metadata: dict | None = None):
    sample = Sample(
        id="s",
        task="math",
        completion=f"<think>\n{cot}\n</think>\n<answer>55</answer>",
        language=language,
        metadata=metadata or {},
    )
    return LanguageConsistencyVerifier().score(sample)


def test_english_cot_with_english_target_scores_one() -> None:
    result = _score(ENGLISH)
    assert result.score == 1.0 and result.verdict is Verdict.CORRECT


def test_chinese_cot_with_english_target_scores_zero() -> None:
    result = _score(CHINESE, language="en")
    assert result.score == 0.0 and result.verdict is Verdict.INCORRECT
    assert "zh" in result.detail


@pytest.mark.parametrize(("cot", "language"), [(CHINESE, "zh"), (CHINESE, "zh-cn"), (FRENCH, "fr"), (JAPANESE, "ja")])
def test_cot_in_its_own_target_language_scores_one(cot: str, language: str) -> None:
    assert _score(cot, language=language).score == 1.0


def test_french_cot_with_english_target_scores_zero() -> None:
    assert _score(FRENCH).score == 0.0


def test_mixed_cot_scores_the_share_of_target_words() -> None:
    result = _score("We need to add fifteen and twenty-seven carefully, step by step. 然后再加上七，我们得到四十二。")
    # 12 English words, 13 Han characters (one word each).
    assert result.score == pytest.approx(12 / 25)
    assert result.verdict is Verdict.INCORRECT


def test_math_and_latex_are_not_words() -> None:
    result = _score(r"$x^2 + \frac{1}{2}$ \[ \int_0^1 f \] `code here` 42 = 6 * 7")
    assert result.verdict is Verdict.NOT_APPLICABLE


def test_missing_think_block_is_not_applicable() -> None:
    sample = Sample(id="s", task="math", completion="The answer is 55.")
    result = LanguageConsistencyVerifier().score(sample)
    assert result.verdict is Verdict.NOT_APPLICABLE and result.score is None


def test_prefilled_think_block_is_judged() -> None:
    sample = Sample(id="s", task="math", completion=CHINESE + "</think><answer>55</answer>")
    assert LanguageConsistencyVerifier().score(sample).score == 0.0


def test_metadata_cot_language_takes_precedence_over_sample_language() -> None:
    assert _score(CHINESE, language="python", metadata={"cot_language": "zh"}).score == 1.0


def test_default_language_is_configurable() -> None:
    sample = Sample(id="s", task="math", completion=f"<think>{FRENCH}</think>")
    verifier = LanguageConsistencyVerifier(LanguageConsistencyConfig(default_language="fr"))
    assert verifier.score(sample).score == 1.0


@pytest.mark.parametrize(
    ("language", "metadata", "field"),
    [("klingon", None, "language"), (None, {"cot_language": 7}, "metadata.cot_language")],
)
def test_unknown_target_language_is_a_sample_error_naming_the_field(language, metadata, field) -> None:
    with pytest.raises(SampleError) as err:
        _score(ENGLISH, language=language, metadata=metadata)
    assert err.value.field == field


def test_detection_is_deterministic() -> None:
    mixed = ENGLISH + " " + FRENCH + " " + CHINESE
    assert len({_score(mixed).score for _ in range(5)}) == 1


def test_scoring_opens_no_network_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("language verifier tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert _score(FRENCH, language="fr").score == 1.0
    assert (Path(PROFILES_DIRECTORY) / "en").is_file()  # profiles ship inside the wheel


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        LanguageConsistencyConfig(min_detect_words=0)
    with pytest.raises(ValueError):
        LanguageConsistencyConfig(default_language="english")
    with pytest.raises(TypeError):
        LanguageConsistencyConfig(min_words=3)  # type: ignore[call-arg]
