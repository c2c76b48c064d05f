"""`arbiter eval`: pass@1 and cons@k of any checkpoint on any prompt file.

pass@1 is estimated as the mean correctness over k samples per prompt (DeepSeek-R1's estimate,
lower variance than one greedy sample); cons@k is majority voting: the most frequent extracted
answer (the primary verifier's VerifierResult.answer) among the k samples, correct when a sample
with that answer was judged CORRECT. Samples without an extracted answer do not vote.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass

from rewards.compose import ScoredSample
from rewards.types import Verdict


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
    prompts, routing, scores = generated.prompts, generated.routing, generated.scores
    results = [
        judge_prompt(p.id, s, routing.route(p.task)[0].verifier if p.task in routing.tasks else None)
        for p, s in zip(prompts, scores, strict=True)
    ]
    summary = {
        "model": args.model,
        "prompts": len(results),
        "k": args.samples,
        "pass@1": statistics.fmean(r.pass_at_1 for r in results),
        f"cons@{args.samples}": statistics.fmean(float(r.consensus_correct) for r in results),
        "faults": sum(1 for group in scores for s in group if s.verdict.is_fault),
    }
    if args.output:
        write_jsonl(args.output, [asdict(r) for r in results])
    print(json.dumps(summary))
    return 0
