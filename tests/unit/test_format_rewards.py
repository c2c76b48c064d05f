"""The R1 template rewards: strict format (with the reason for a failure) and tag-count partial credit."""

from __future__ import annotations

import random
import re

import pytest

from rewards.format import R1Parts, StrictFormatConfig, StrictFormatVerifier, TagCountVerifier, split_r1
from rewards.types import Sample, Verdict


def _sample(completion: str) -> Sample:
    return Sample(id="s", task="format", completion=completion)


GOOD = "<think>\nadd them\n</think>\n<answer>\n\\boxed{5}\n</answer>"

# (completion, expected score, words the detail must contain)
STRICT_TABLE = [
    (GOOD, 1.0, "well-formed"),
    ("  \n<think>x</think><answer>5</answer>\n\n", 1.0, "well-formed"),
    ("<think></think>\n<answer>5</answer>", 1.0, "well-formed"),
    ("The answer is 5.", 0.0, "<think> appears 0 times"),
    ("<think>x</think>", 0.0, "<answer> appears 0 times"),
    ("<think>a</think><think>b</think><answer>5</answer>", 0.0, "<think> appears 2 times"),
    ("<think>x</think><answer>5</answer><answer>6</answer>", 0.0, "<answer> appears 2 times"),
    ("<think>x</think><answer>5<answer>6</answer></answer>", 0.0, "<answer> appears 2 times"),
    ("<answer>5</answer><think>x</think>", 0.0, "tags out of order"),
    ("<think>x<answer>5</answer></think>", 0.0, "tags out of order"),
    ("Sure! <think>x</think><answer>5</answer>", 0.0, "text before <think>: 'Sure!'"),
    ("<think>x</think> so <answer>5</answer>", 0.0, "text between </think> and <answer>"),
    ("<think>x</think><answer>5</answer> Hope this helps!", 0.0, "text after </answer>"),
    ("<think>x</think><answer>  \n </answer>", 0.0, "empty <answer> block"),
    ("", 0.0, "<think> appears 0 times"),
]


@pytest.mark.parametrize(("completion", "score", "detail"), STRICT_TABLE)
def test_strict_format_golden_table(completion: str, score: float, detail: str) -> None:
    result = StrictFormatVerifier().score(_sample(completion))
    assert result.score == score
    assert result.verdict is (Verdict.CORRECT if score == 1.0 else Verdict.INCORRECT)
    assert detail in result.detail


def test_strict_format_reports_the_answer_text() -> None:
    assert StrictFormatVerifier().score(_sample(GOOD)).answer == "\\boxed{5}"


def test_strict_format_truncates_long_stray_text_in_detail() -> None:
    result = StrictFormatVerifier().score(_sample("<think>x</think><answer>5</answer>" + "blah " * 100))
    assert len(result.detail) < 80 and result.detail.endswith("…'")


def test_prefilled_think_expects_no_opening_tag() -> None:
    verifier = StrictFormatVerifier(StrictFormatConfig(prefilled_think=True))
    assert verifier.score(_sample("reasoning here\n</think>\n<answer>5</answer>")).score == 1.0
    repeated = verifier.score(_sample("<think>reasoning</think><answer>5</answer>"))
    assert repeated.score == 0.0 and "<think> appears 1 times (expected 0)" in repeated.detail


def test_empty_answer_allowed_when_configured() -> None:
    verifier = StrictFormatVerifier(StrictFormatConfig(require_answer_text=False))
    assert verifier.score(_sample("<think>x</think><answer></answer>")).score == 1.0


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        (GOOD, 1.0),
        ("<think>x</think><answer>5</answer>", 1.0),  # no newlines needed, unlike open-r1
        ("<think>x</think>", 0.5),
        ("<think>x", 0.25),
        ("<think>x</think><answer>5</answer><answer>6</answer>", 0.5),
        ("plain text", 0.0),
    ],
)
def test_tag_count_gives_a_quarter_per_tag_present_exactly_once(completion: str, score: float) -> None:
    result = TagCountVerifier().score(_sample(completion))
    assert result.score == score
    assert result.verdict is (Verdict.CORRECT if score == 1.0 else Verdict.INCORRECT)


def test_tag_count_detail_names_the_wrong_tags() -> None:
    detail = TagCountVerifier().score(_sample("<think>x</think>")).detail
    assert "<answer>×0" in detail and "</answer>×0" in detail and "<think>×" not in detail


def test_split_r1_handles_prefilled_and_repeated_blocks() -> None:
    assert split_r1(GOOD).think == "\nadd them\n"
    assert split_r1("reasoning</think><answer>1</answer>").think == "reasoning"
    assert split_r1("<think>x</think><answer>1</answer><answer>2</answer>").answer == "2"
    assert split_r1("no tags") == R1Parts(think=None, answer=None)


def test_answer_block_is_the_last_non_overlapping_regex_match_on_tag_soup() -> None:
    rng = random.Random(0)
    pieces = ["<answer>", "</answer>", "x", "y\n", "<think>", "</think>", "<answ", "er>"]
    for _ in range(5000):
        completion = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        blocks = re.findall(r"<answer>(.*?)</answer>", completion, flags=re.DOTALL)
        assert split_r1(completion).answer == (blocks[-1] if blocks else None), completion
