"""`arbiter sample`: R1's rejection sampling. Generate k completions per prompt, keep those every
verifier accepts (the task's verdict and every scored component CORRECT), write them as SFT JSONL
for `arbiter sft`."""

from __future__ import annotations

import argparse

from rewards.compose import ScoredSample
from rewards.types import Verdict
from trainer.data import write_jsonl


def accepted(scored: ScoredSample) -> bool:
    return scored.verdict is Verdict.CORRECT and all(
        r.verdict is Verdict.CORRECT for r in scored.components.values() if r.score is not None
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainer.generation_cli import add_common_arguments

    add_common_arguments(parser, "completions generated per prompt")
    parser.add_argument("--output", required=True, help='SFT JSONL to write: {"id", "prompt", "completion", "reward"}')
    parser.add_argument("--max-per-prompt", type=int, default=None, help="keep at most this many distinct per prompt")


def run(args: argparse.Namespace) -> int:
    from trainer.generation_cli import INPUT_ERRORS, generate_and_score

    try:
        generated = generate_and_score(args)
    except INPUT_ERRORS as exc:
        print(f"arbiter sample: {exc}")
        return 2
    prompts, texts = generated.prompts, generated.texts
    rows = []
    for prompt, group, group_scores in zip(prompts, texts, generated.scores, strict=True):
        kept: list[str] = []
        for text, scored in zip(group, group_scores, strict=True):
            if accepted(scored) and text not in kept:
                kept.append(text)
                rows.append({"id": prompt.id, "prompt": prompt.prompt, "completion": text, "reward": scored.reward})
            if args.max_per_prompt is not None and len(kept) >= args.max_per_prompt:
                break
    write_jsonl(args.output, rows)
    covered = len({r["id"] for r in rows})
    print(f"sample: kept {len(rows)} of {sum(len(g) for g in texts)} completions, covering {covered} of "
          f"{len(prompts)} prompts -> {args.output}")
    return 0
