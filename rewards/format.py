"""Format rewards for the DeepSeek-R1 template ``<think>…</think><answer>…</answer>``.

DeepSeek-R1 (DeepSeek-AI 2025, "DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via
Reinforcement Learning", §2.2.2) trains with an accuracy reward plus a *format reward* that
asks the model to put its thinking between ``<think>`` and ``</think>``. Two verifiers:

- ``format`` (`StrictFormatVerifier`): 1.0 when the completion is exactly one think block
  followed by exactly one non-empty answer block, with only whitespace around them; else 0.0
  and a detail naming the first thing that is wrong. Stricter than open-r1's ``format_reward``
  regex, which accepts a second ``<answer>`` inside the first and demands exact newlines.
- ``tag_count`` (`TagCountVerifier`): open-r1's ``tag_count_reward``, 0.25 for each of the four
  tags that appears exactly once, a dense signal early in training. Unlike open-r1 it does not
  require newlines around the tags, so ``<think>x</think>`` counts.

Chat templates of R1-distilled models put ``<think>\\n`` in the prompt, so the completion
starts inside the think block: set ``prefilled_think=True`` for those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rewards.types import Sample, VerifierResult

_TAG = re.compile(r"</?(?:think|answer)>")
_EXPECTED = ("<think>", "</think>", "<answer>", "</answer>")
_SNIPPET_CHARS = 40


@dataclass(frozen=True)
class R1Parts:
    """The thinking and the answer of a completion; None where the block is missing."""

    think: str | None
    answer: str | None


def think_block(completion: str) -> str | None:
    """The text from the first ``<think>`` (or the start, when the template prefilled it) to the
    first ``</think>`` after it; None without a ``</think>``."""
    close = completion.find("</think>")
    if close < 0:
        return None
    open_ = completion.find("<think>")
    start = open_ + len("<think>") if 0 <= open_ < close else 0
    return completion[start:close]


def split_r1(completion: str) -> R1Parts:
    """Lenient extraction for rewards that judge one part (the CoT, the answer).

    The think block is `think_block`'s; the answer is the last complete
    ``<answer>…</answer>`` block, as the final answer is what R1 reports.
    """
    return R1Parts(think=think_block(completion), answer=_last_answer_block(completion))


def _last_answer_block(completion: str) -> str | None:
    """``re.findall(r"<answer>(.*?)</answer>", DOTALL)[-1]`` in linear time: the regex rescans to the
    end from every unclosed ``<answer>``, seconds on a hostile 64 KB completion."""
    last, pos = None, 0
    while (start := completion.find("<answer>", pos)) >= 0:
        end = completion.find("</answer>", start + len("<answer>"))
        if end < 0:  # no close after this open, so none after any later one either
            break
        last, pos = completion[start + len("<answer>") : end], end + len("</answer>")
    return last


def _snippet(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "…")


@dataclass(frozen=True)
class StrictFormatConfig:
    prefilled_think: bool = False
    """The prompt already ends with ``<think>``; the completion must not repeat it."""
    require_answer_text: bool = True
    """An ``<answer></answer>`` with only whitespace inside fails the format."""


class StrictFormatVerifier:
    """1.0 for exactly ``<think>…</think><answer>…</answer>`` and nothing else but whitespace."""

    name = "format"
    version = "1"
    reference = "none"

    def __init__(self, config: StrictFormatConfig | None = None) -> None:
        self.config = config or StrictFormatConfig()

    def score(self, sample: Sample) -> VerifierResult:
        problem, answer = self._check(sample.completion)
        if problem:
            return VerifierResult.incorrect(0.0, problem)
        return VerifierResult.correct(1.0, "well-formed", answer=answer)

    def _check(self, text: str) -> tuple[str, str | None]:
        """(first problem found or "", the answer text)."""
        expected = _EXPECTED[1:] if self.config.prefilled_think else _EXPECTED
        tags = [(m.group(), m.start(), m.end()) for m in _TAG.finditer(text)]
        for tag in _EXPECTED:
            count = sum(1 for t, _, _ in tags if t == tag)
            want = 1 if tag in expected else 0
            if count != want:
                return f"{tag} appears {count} times (expected {want})", None
        seen = [t for t, _, _ in tags]
        if tuple(seen) != expected:
            return f"tags out of order: {' '.join(seen)}", None
        spans = [(start, end) for _, start, end in tags]
        if self.config.prefilled_think:
            outside = {"after </think>": (spans[0][1], spans[1][0]), "after </answer>": (spans[2][1], len(text))}
            answer = text[spans[1][1] : spans[2][0]]
        else:
            outside = {
                "before <think>": (0, spans[0][0]),
                "between </think> and <answer>": (spans[1][1], spans[2][0]),
                "after </answer>": (spans[3][1], len(text)),
            }
            answer = text[spans[2][1] : spans[3][0]]
        for where, (start, end) in outside.items():
            if text[start:end].strip():
                return f"text {where}: {_snippet(text[start:end])}", None
        if self.config.require_answer_text and not answer.strip():
            return "empty <answer> block", None
        return "", answer.strip()


@dataclass(frozen=True)
class TagCountConfig:
    credit_per_tag: float = 0.25
    """open-r1's weight: four tags make a full 1.0."""


class TagCountVerifier:
    """Partial credit: ``credit_per_tag`` for each R1 tag that appears exactly once."""

    name = "tag_count"
    version = "1"
    reference = "none"

    def __init__(self, config: TagCountConfig | None = None) -> None:
        self.config = config or TagCountConfig()

    def score(self, sample: Sample) -> VerifierResult:
        counts = {tag: sample.completion.count(tag) for tag in _EXPECTED}
        wrong = [f"{tag}×{n}" for tag, n in counts.items() if n != 1]
        score = self.config.credit_per_tag * (len(_EXPECTED) - len(wrong))
        detail = "each tag once" if not wrong else "not exactly once: " + ", ".join(wrong)
        return VerifierResult.graded(score, detail)
