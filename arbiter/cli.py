"""`arbiter SUBCOMMAND ...`: each subcommand lives with the package that owns it.

Subcommands are imported lazily so that `arbiter score` never pays for torch
or Ray, and so the packages keep their one-way dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help); each module defines add_arguments(parser) and run(args) -> int
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "score": ("arbiter.score", "score a JSONL file of completions, in-process or against an endpoint"),
    "serve": ("services.serve_cli", "run the verifier cluster of a cluster config on Ray Serve (or --standalone)"),
    "train": ("trainer.train", "cold-start SFT then asynchronous GRPO against verifier services on Ray"),
    "sample": ("trainer.sample", "rejection sampling: keep the completions the verifiers accept, as SFT JSONL"),
    "sft": ("trainer.sft", "supervised fine-tuning on prompt/completion JSONL"),
    "eval": ("trainer.evaluate", "pass@1 and cons@k of a checkpoint on a prompt file"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arbiter", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    sub_parser = argparse.ArgumentParser(prog=f"arbiter {args.command}", description=SUBCOMMANDS[args.command][1])
    module.add_arguments(sub_parser)
    return int(module.run(sub_parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
