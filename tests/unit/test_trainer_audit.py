"""Training's view of the math audit: a per-step disagreement share and the disputed examples."""

from __future__ import annotations

from rewards.compose import ScoredSample
from rewards.types import Verdict, VerifierResult
from trainer.data import PromptItem
from trainer.learner import audit_examples, reward_metrics
from trainer.pipeline import Group
from trainer.rollout import Completion


def _group(results: list[VerifierResult]) -> Group:
    prompt = PromptItem("p1", "What is 2/3 as a decimal?", "\\frac{2}{3}", "math")
    completions = [Completion(prompt, i, (1, 2), "text", (-0.1, -0.2), 0) for i in range(len(results))]
    scores = [ScoredSample(str(i), r.score, r.verdict, {"math": r}) for i, r in enumerate(results)]
    return Group(prompt, completions, scores)


def test_step_metrics_carry_the_share_of_audited_samples_that_disagree() -> None:
    group = _group([
        VerifierResult(Verdict.CORRECT, 1.0, "", "0.\\overline{6}", audit=Verdict.INCORRECT),
        VerifierResult(Verdict.CORRECT, 1.0, "", "\\frac{4}{6}", audit=Verdict.CORRECT),
        VerifierResult(Verdict.INCORRECT, 0.0, "", "0.6"),  # not audited
        VerifierResult(Verdict.INCORRECT, 0.0, "", "0.7", audit=Verdict.TIMEOUT),  # audit faulted: no opinion
    ])
    metrics = reward_metrics([group], 0, {"math": "math"})
    assert metrics["audit/math_disagreement"] == 1 / 3
    assert metrics["audit/math_audited"] == 3


def test_step_without_audits_logs_no_audit_metric() -> None:
    metrics = reward_metrics([_group([VerifierResult.correct(answer="1")])], 0, {"math": "math"})
    assert not any(key.startswith("audit/") for key in metrics)


def test_disputed_verdicts_become_audit_examples_with_gold_and_answer() -> None:
    group = _group([
        VerifierResult(Verdict.CORRECT, 1.0, "d", "0.\\overline{6}", audit=Verdict.INCORRECT),
        VerifierResult(Verdict.CORRECT, 1.0, "", "\\frac{4}{6}", audit=Verdict.CORRECT),
    ])
    assert audit_examples([group], 7) == [
        {"step": 7, "prompt_id": "p1", "verifier": "math", "verdict": "correct", "audit": "incorrect",
         "gold": "\\frac{2}{3}", "answer": "0.\\overline{6}", "detail": "d"},
    ]
