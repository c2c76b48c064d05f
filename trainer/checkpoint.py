"""Checkpoints a run can resume from: the sharded policy and optimizer (torch Distributed Checkpoint,
each learner rank writes its shard), the full model + tokenizer (save_pretrained, for `arbiter
eval`, `sample`, `sft` and the rollouts), the step and the driver's RNG states.

Layout: DIR/checkpoints/step-000040/{config.json, model.safetensors, tokenizer files,
trainer_state.pt, dcp/} and DIR/checkpoints/latest naming the newest complete one (written last,
so a crash mid-save leaves the previous checkpoint as latest). A checkpoint is staged in
.tmp-step-N (the ranks' shards first) and renamed when whole; with ranks on several nodes DIR must
be a shared filesystem. DCP reshards on load, so a run may resume with another `learner.ranks`.
The cold-start model is kept in DIR/checkpoints/sft, the reference for the KL term.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class Resumed:
    step: int
    """Updates already applied: training continues with this step index."""
    path: Path


def checkpoint_dir(output: Path) -> Path:
    return output / "checkpoints"


def shards(path: Path) -> Path:
    """The learner ranks' Distributed Checkpoint of policy and optimizer inside a checkpoint."""
    return path / "dcp"


def stage(output: Path, step: int) -> Path:
    """A fresh staging directory for step `step`'s checkpoint: the ranks write `shards(it)` first."""
    tmp = checkpoint_dir(output) / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit(output: Path, step: int, staged: Path, model: Any, tokenizer: Any, keep: int) -> Path:
    """Add the full model, tokenizer, step and RNG states to `staged`, then make it the latest checkpoint."""
    root = checkpoint_dir(output)
    path = root / f"step-{step:06d}"
    model.save_pretrained(staged)
    tokenizer.save_pretrained(staged)
    torch.save({"step": step, "rng": {"python": random.getstate(), "torch": torch.get_rng_state()}},
               staged / "trainer_state.pt")
    shutil.rmtree(path, ignore_errors=True)
    staged.rename(path)
    (root / "latest").write_text(path.name + "\n")
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def latest(output: Path) -> Path | None:
    marker = checkpoint_dir(output) / "latest"
    if not marker.is_file():
        return None
    path = checkpoint_dir(output) / marker.read_text().strip()
    return path if (path / "trainer_state.pt").is_file() and shards(path).is_dir() else None


def restore(path: Path) -> Resumed:
    """The step and the driver's RNG states (the learner ranks load `shards(path)` themselves)."""
    state = torch.load(path / "trainer_state.pt", weights_only=False)  # our own file: python RNG state is a tuple
    random.setstate(state["rng"]["python"])
    torch.set_rng_state(state["rng"]["torch"])
    return Resumed(step=int(state["step"]), path=path)
