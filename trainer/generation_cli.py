"""What `arbiter sample` and `arbiter eval` share: load a checkpoint and prompts, sample k
completions per prompt locally, and score them through the configured reward backend."""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rewards.compose import ScoredSample
from rewards.routing import RoutingConfig
from trainer.config import RewardsConfig, load_config, parse_overrides
from trainer.data import DataError, PromptItem, load_prompts

INPUT_ERRORS = (DataError, FileNotFoundError, ValueError)
"""What a bad --model, --prompts or --routing raises: the command prints it on one line and exits 2."""


def add_common_arguments(parser: argparse.ArgumentParser, samples_help: str) -> None:
    parser.add_argument("--model", required=True, help="checkpoint directory (save_pretrained layout)")
    parser.add_argument("--prompts", required=True,
                        help='JSONL or Parquet prompt file (default fields: "id", "prompt", "answer", "task")')
    parser.add_argument("-k", "--samples", type=int, default=8, help=samples_help)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-prompts", type=int, default=32, help="prompts generated together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["standalone", "serve", "inprocess"], default="standalone",
                        help="verifiers: a gRPC server on 127.0.0.1 (default), Ray Serve, or in-process")
    parser.add_argument("--endpoint", default=None, help="host:port of running verifier services (overrides --backend)")
    parser.add_argument("--routing", default=None, help="routing YAML (default: rewards DEFAULT_ROUTING)")
    parser.add_argument("--config", default=None,
                        help="a training config: --prompts is read with its data.* fields and rendered as training "
                             "rendered them (data.template, model.chat_template, model.system_prompt)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key of that config, e.g. --set data.prompt_field=question")


@dataclass
class Generated:
    prompts: list[PromptItem]
    routing: RoutingConfig
    texts: list[list[str]]
    """texts[prompt][k]"""
    scores: list[list[ScoredSample]]
    """scores[prompt][k]"""


def generate_and_score(args: argparse.Namespace) -> Generated:
    """Inputs are read and checked before any generation, so a bad path fails at once."""
    from trainer.policy import limit_threads, load_checkpoint, sample
    from trainer.reward_client import score_blocking
    from trainer.templates import render_prompts

    limit_threads()
    cfg = load_config(args.config, parse_overrides(args.set))
    raw_prompts = load_prompts(args.prompts, cfg.data)
    routing = RoutingConfig.load_or_default(args.routing)
    model, tokenizer = load_checkpoint(args.model)
    prompts = render_prompts(raw_prompts, cfg.model, cfg.data, tokenizer)
    model.eval()
    texts: list[list[str]] = []
    for start in range(0, len(prompts), args.batch_prompts):
        part = prompts[start : start + args.batch_prompts]
        rows = sample(model, tokenizer, [p.prompt for p in part], args.samples, args.max_new_tokens,
                      args.temperature, args.seed + start, with_logps=False)
        for i in range(len(part)):
            texts.append([tokenizer.decode(row.token_ids, skip_special_tokens=True)
                          for row in rows[i * args.samples : (i + 1) * args.samples]])
    samples = [p.to_sample(f"{p.id}#{j}", text) for p, group in zip(prompts, texts, strict=True)
               for j, text in enumerate(group)]
    with tempfile.TemporaryDirectory(prefix="arbiter-") as workdir:
        flat = score_blocking(RewardsConfig(backend=args.backend, endpoint=args.endpoint), routing, samples,
                              Path(workdir))
    k = args.samples
    return Generated(prompts, routing, texts, [flat[i * k : (i + 1) * k] for i in range(len(prompts))])
