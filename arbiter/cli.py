"""`arbiter SUBCOMMAND ...`: each subcommand lives with the package that owns it.

Subcommands are imported lazily so that `arbiter score` never pays for torch
or Ray, and so the packages keep their one-way dependencies. A subcommand whose
layer is an optional extra says which one to install when it is missing.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from arbiter.extras import MISSING_EXTRA_STATUS, missing_extra_message

# name -> (module, help, extra it needs or None for the core); each module defines
# add_arguments(parser) and run(args) -> int
SUBCOMMANDS: dict[str, tuple[str, str, str | None]] = {
    "score": ("arbiter.score", "score a JSONL file of completions, in-process or against an endpoint", None),
    "serve": ("services.serve_cli", "run the verifier cluster of a cluster config on Ray Serve (or --standalone)",
              "services"),
    "train": ("trainer.train", "cold-start SFT then asynchronous GRPO against verifier services on Ray", "train"),
    "sample": ("trainer.sample", "rejection sampling: keep the completions the verifiers accept, as SFT JSONL",
               "train"),
    "sft": ("trainer.sft", "supervised fine-tuning on prompt/completion JSONL", "train"),
    "eval": ("trainer.evaluate", "pass@1 and cons@k of a checkpoint on a prompt file", "train"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arbiter", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_module, help_text, _extra) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    module_name, description, extra = SUBCOMMANDS[args.command]
    message = missing_extra_message(f"arbiter {args.command}", extra) if extra else None
    if message:
        print(f"arbiter: error: {message}", file=sys.stderr)
        return MISSING_EXTRA_STATUS
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(prog=f"arbiter {args.command}", description=description)
    module.add_arguments(sub_parser)
    return int(module.run(sub_parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
