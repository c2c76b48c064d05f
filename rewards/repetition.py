"""N-gram repetition penalty, from Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning
in LLMs" (arXiv:2502.03373, Appendix C.2), as open-r1's ``get_repetition_penalty_reward``.

penalty = (1 - distinct n-grams / all n-grams) * max_penalty, over the lower-cased,
whitespace-split words of the whole completion: 0 for text without a repeated n-gram, near
``max_penalty`` for a loop. Completions shorter than one n-gram get 0. Word n-grams rather
than TRL's token-id n-grams, because verifiers here hold no tokenizer.

A penalty, never a bonus: CORRECT (no repetition) at 0, INCORRECT below 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rewards.types import Sample, VerifierResult


@dataclass(frozen=True)
class RepetitionPenaltyConfig:
    ngram_size: int = 3
    """Yeo et al. and TRL default to trigrams."""
    max_penalty: float = -1.0
    """The penalty of a completion that is one n-gram repeated; must be <= 0."""

    def __post_init__(self) -> None:
        if self.ngram_size < 1:
            raise ValueError("ngram_size must be >= 1")
        if not (math.isfinite(self.max_penalty) and self.max_penalty <= 0):
            raise ValueError(f"max_penalty {self.max_penalty} must be a finite number <= 0")


class RepetitionPenaltyVerifier:
    """Penalise repeated word n-grams, from 0 (none) to max_penalty (all repeats)."""

    name = "repetition"
    version = "1"
    reference = "none"

    def __init__(self, config: RepetitionPenaltyConfig | None = None) -> None:
        self.config = config or RepetitionPenaltyConfig()

    def score(self, sample: Sample) -> VerifierResult:
        n = self.config.ngram_size
        words = sample.completion.lower().split()
        ngrams = list(zip(*(words[i:] for i in range(n)), strict=False))
        if not ngrams:
            return VerifierResult.correct(0.0, f"fewer than {n} words")
        repeated = 1.0 - len(set(ngrams)) / len(ngrams)
        detail = f"{repeated:.0%} of {len(ngrams)} {n}-grams repeat"
        if repeated == 0.0:
            return VerifierResult.correct(0.0, detail)
        return VerifierResult.incorrect(repeated * self.config.max_penalty, detail)
