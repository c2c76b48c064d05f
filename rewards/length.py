"""Length-shaping rewards: cosine-scaled length reward and DAPO's soft overlong punishment.

Both measure the whole completion in characters: verifiers here hold no tokenizer, and a
character budget is model-independent (count about 4 characters per English token).

- ``cosine_length`` (`CosineLengthVerifier`), from Yeo et al. 2025, "Demystifying Long
  Chain-of-Thought Reasoning in LLMs" (arXiv:2502.03373, §4), as open-r1's
  ``get_cosine_scaled_reward``: a correct answer earns between ``max_value_correct`` (length 0)
  and ``min_value_correct`` (length ``max_len_chars``) along a half cosine, so shorter correct
  answers earn more; a wrong answer earns between ``min_value_wrong`` (length 0) and
  ``max_value_wrong`` (long), so a model that is wrong is pushed to think longer. Unlike open-r1,
  the length is clamped at ``max_len_chars`` (the cosine is periodic: open-r1 rewards a wrong
  answer of twice the budget like a wrong empty one), and ``exceed_length_score`` gives Yeo et
  al.'s separate reward for completions that overrun the budget.

  Correctness comes from ``metadata["correct"]`` (a boolean) when the caller already knows
  it; otherwise the ``correctness_verifier`` (default ``math``) is looked up in the registry and
  asked, so this verifier never re-implements answer checking. CORRECT/INCORRECT follows that
  judgement; a NOT_APPLICABLE or faulted judgement is passed on as it is (never turned into a
  length reward). Routed together with ``math``, the answer is checked twice: pass
  ``metadata.correct`` to avoid that.

- ``overlong`` (`SoftOverlongVerifier`), from Yu et al. 2025, "DAPO: An Open-Source LLM
  Reinforcement Learning System at Scale" (arXiv:2503.14476, Eq. 13): with length L, budget
  L_max and buffer L_cache, 0 when L <= L_max - L_cache, (L_max - L_cache - L) / L_cache inside
  the buffer, -1 beyond L_max. A penalty: CORRECT (within budget) at 0, INCORRECT below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rewards.registry import get_verifier
from rewards.types import Sample, SampleError, Verdict, VerifierResult


@dataclass(frozen=True)
class CosineLengthConfig:
    min_value_wrong: float = -1.0
    """Reward of a wrong answer of length 0 (open-r1's default)."""
    max_value_wrong: float = -0.5
    """Reward of a wrong answer at the length budget."""
    min_value_correct: float = 0.5
    """Reward of a correct answer at the length budget."""
    max_value_correct: float = 1.0
    """Reward of a correct answer of length 0."""
    max_len_chars: int = 1000
    """The length budget; open-r1's default of 1000 (it counts characters too)."""
    exceed_length_score: float | None = None
    """Reward for a completion longer than the budget, right or wrong (Yeo et al.); None: clamp."""
    correctness_verifier: str = "math"
    """Registry name of the verifier asked when metadata.correct is absent."""

    def __post_init__(self) -> None:
        if self.max_len_chars < 1:
            raise ValueError("max_len_chars must be >= 1")
        values = (self.min_value_wrong, self.max_value_wrong, self.min_value_correct, self.max_value_correct)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("cosine reward bounds must be finite")


class CosineLengthVerifier:
    """Length-scaled accuracy: short and right is best, short and wrong is worst (Yeo et al. 2025)."""

    name = "cosine_length"
    version = "1"
    reference = "answer"

    def __init__(self, config: CosineLengthConfig | None = None) -> None:
        self.config = config or CosineLengthConfig()

    def score(self, sample: Sample) -> VerifierResult:
        judged = self._correctness(sample)
        if not judged.verdict.has_score:
            return judged
        correct = judged.verdict is Verdict.CORRECT
        cfg = self.config
        length = len(sample.completion)
        if cfg.exceed_length_score is not None and length > cfg.max_len_chars:
            reward = cfg.exceed_length_score
        else:
            cosine = math.cos(min(length / cfg.max_len_chars, 1.0) * math.pi)
            # At length 0 the cosine is 1 and the reward is `high`; at the budget it is `low`.
            low, high = (cfg.min_value_correct, cfg.max_value_correct) if correct else (
                cfg.max_value_wrong,
                cfg.min_value_wrong,
            )
            reward = low + 0.5 * (high - low) * (1.0 + cosine)
        detail = f"{'correct' if correct else 'wrong'} ({judged.detail}), {length} chars of {cfg.max_len_chars}"
        verdict = Verdict.CORRECT if correct else Verdict.INCORRECT
        return VerifierResult(verdict, reward, detail, judged.answer)

    def _correctness(self, sample: Sample) -> VerifierResult:
        if "correct" in sample.metadata:
            known = sample.metadata["correct"]
            if not isinstance(known, bool):
                raise SampleError("metadata.correct", f"must be a boolean, got {type(known).__name__}")
            return VerifierResult.correct(detail="metadata.correct") if known else VerifierResult.incorrect(
                detail="metadata.correct"
            )
        judged = get_verifier(self.config.correctness_verifier).score(sample)
        prefix = f"{self.config.correctness_verifier}: "
        return VerifierResult(judged.verdict, judged.score, prefix + judged.detail, judged.answer)


@dataclass(frozen=True)
class SoftOverlongConfig:
    max_len_chars: int = 16384
    """L_max. DAPO uses 20,480 tokens with a 4,096 buffer; these defaults are ~4k/1k tokens."""
    cache_len_chars: int = 4096
    """L_cache, the buffer before L_max over which the penalty grows from 0 to -1; 0: a hard step."""

    def __post_init__(self) -> None:
        if self.max_len_chars < 1:
            raise ValueError("max_len_chars must be >= 1")
        if not 0 <= self.cache_len_chars <= self.max_len_chars:
            raise ValueError("cache_len_chars must be in [0, max_len_chars]")


class SoftOverlongVerifier:
    """DAPO's soft overlong punishment: 0 inside the budget, linear to -1 over the buffer, -1 beyond."""

    name = "overlong"
    version = "1"
    reference = "none"

    def __init__(self, config: SoftOverlongConfig | None = None) -> None:
        self.config = config or SoftOverlongConfig()

    def score(self, sample: Sample) -> VerifierResult:
        length, cfg = len(sample.completion), self.config
        soft_limit = cfg.max_len_chars - cfg.cache_len_chars
        detail = f"{length} chars; penalty starts after {soft_limit}, -1 beyond {cfg.max_len_chars}"
        if length <= soft_limit:
            return VerifierResult.correct(0.0, detail)
        if length <= cfg.max_len_chars:
            return VerifierResult.incorrect((soft_limit - length) / cfg.cache_len_chars, detail)
        return VerifierResult.incorrect(-1.0, detail)
