"""`arbiter eval` and evaluation during training: pass@1 and cons@k on a prompt file.

pass@1 is estimated as the mean correctness over k samples per prompt (DeepSeek-R1's estimate,
lower variance than one greedy sample); cons@k is majority voting: the most frequent extracted
answer (the primary verifier's VerifierResult.answer) among the k samples, correct when a sample
with that answer was judged CORRECT. Samples without an extracted answer do not vote.

`arbiter eval` samples a checkpoint locally; during training (`eval.*`) the rollout actors sample
the current weights (`evaluate_policy`); both score through the same verifiers and `summarize`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rewards.compose import ScoredSample
from rewards.routing import RoutingConfig
from rewards.types import Verdict

if TYPE_CHECKING:
    from trainer.config import TrainConfig
    from trainer.data import PromptItem
    from trainer.pipeline import Pipeline
    from trainer.reward_client import RewardClient


@dataclass(frozen=True)
class PromptResult:
    id: str
    pass_at_1: float
    consensus_answer: str | None
    consensus_correct: bool


def primary_result(scored: ScoredSample, verifier: str | None):
    if verifier is not None and verifier in scored.components:
        return scored.components[verifier]
    return next(iter(scored.components.values()), None)


def judge_prompt(prompt_id: str, scores: list[ScoredSample], verifier: str | None) -> PromptResult:
    correct = [s.verdict is Verdict.CORRECT for s in scores]
    votes: Counter[str] = Counter()
    verdict_of: dict[str, bool] = {}
    for s, ok in zip(scores, correct, strict=True):
        result = primary_result(s, verifier)
        if result is None or result.answer is None:
            continue
        votes[result.answer] += 1
        verdict_of[result.answer] = verdict_of.get(result.answer, False) or ok
    # Ties go to the answer seen first, so the vote is deterministic.
    answer = votes.most_common(1)[0][0] if votes else None
    return PromptResult(prompt_id, statistics.fmean(correct) if correct else 0.0, answer,
                        bool(answer is not None and verdict_of[answer]))


def summarize(prompts: list[PromptItem], scores: list[list[ScoredSample]],
              routing: RoutingConfig) -> tuple[dict[str, float | int], list[PromptResult]]:
    """-> ({"pass@1", "cons@K", "faults"}, one result per prompt); scores[prompt][sample]."""
    results = [
        judge_prompt(p.id, s, routing.route(p.task)[0].verifier if p.task in routing.tasks else None)
        for p, s in zip(prompts, scores, strict=True)
    ]
    k = len(scores[0]) if scores else 0
    summary = {
        "pass@1": statistics.fmean(r.pass_at_1 for r in results),
        f"cons@{k}": statistics.fmean(float(r.consensus_correct) for r in results),
        "faults": sum(1 for group in scores for s in group if s.verdict.is_fault),
    }
    return summary, results


async def evaluate_policy(pipeline: Pipeline, rewards: RewardClient, prompts: list[PromptItem],
                          routing: RoutingConfig, cfg: TrainConfig, version: int) -> dict[str, float | int]:
    """The current weights on the eval prompts: k samples each from the rollout actors, scored as each
    chunk arrives -> {"eval/pass@1", "eval/cons@K", "eval/faults"}.

    Chunks are the size of a training step's first (largest) chunk, which the actors already fit.
    """
    from trainer.pipeline import chunk_sizes, to_samples
    from trainer.rollout import RolloutRequest

    g, k = cfg.grpo, cfg.eval.samples_per_prompt
    size = chunk_sizes(g.prompts_per_step, cfg.rollout.chunks_per_step)[0]

    async def chunk(index: int) -> list[ScoredSample]:
        part = tuple(prompts[index * size : (index + 1) * size])
        request = RolloutRequest(version, index, part, k, g.max_completion_tokens, cfg.eval.temperature, cfg.seed,
                                 stream=1)
        return await rewards.score(to_samples(version, (await pipeline.generate(request)).completions, prefix="eval"))

    flat = [s for part in await asyncio.gather(*(chunk(i) for i in range(-(-len(prompts) // size)))) for s in part]
    summary, _ = summarize(prompts, [flat[i * k : (i + 1) * k] for i in range(len(prompts))], routing)
    return {f"eval/{key}": value for key, value in summary.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainer.generation_cli import add_common_arguments

    add_common_arguments(parser, "k: samples per prompt for pass@1 and cons@k")
    parser.add_argument("--output", default=None, help="write per-prompt results as JSONL here")


def run(args: argparse.Namespace) -> int:
    from trainer.data import write_jsonl
    from trainer.generation_cli import INPUT_ERRORS, generate_and_score

    try:
        generated = generate_and_score(args)
    except INPUT_ERRORS as exc:
        print(f"arbiter eval: {exc}")
        return 2
    scores, results = summarize(generated.prompts, generated.scores, generated.routing)
    summary: dict[str, Any] = {"model": args.model, "prompts": len(results), "k": args.samples, **scores}
    if args.output:
        write_jsonl(args.output, [asdict(r) for r in results])
    print(json.dumps(summary))
    return 0
