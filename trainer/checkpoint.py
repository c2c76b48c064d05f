"""Checkpoints a run can resume from: model + tokenizer (save_pretrained), optimizer, step, RNG states.

Layout: DIR/checkpoints/step-000040/{config.json, model.safetensors, tokenizer files, trainer_state.pt}
and DIR/checkpoints/latest naming the newest complete one (written last, so a crash mid-save
leaves the previous checkpoint as latest). The cold-start model is kept in DIR/checkpoints/sft,
the reference for the KL term.
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


def save(output: Path, step: int, model: Any, tokenizer: Any, optimizer: torch.optim.Optimizer, keep: int) -> Path:
    root = checkpoint_dir(output)
    path = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save(
        {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "rng": {"python": random.getstate(), "torch": torch.get_rng_state()},
        },
        tmp / "trainer_state.pt",
    )
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    (root / "latest").write_text(path.name + "\n")
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def latest(output: Path) -> Path | None:
    marker = checkpoint_dir(output) / "latest"
    if not marker.is_file():
        return None
    path = checkpoint_dir(output) / marker.read_text().strip()
    return path if (path / "trainer_state.pt").is_file() else None


def restore(path: Path, optimizer: torch.optim.Optimizer) -> Resumed:
    """Load optimizer and RNG state into a model already loaded from `path`."""
    state = torch.load(path / "trainer_state.pt", weights_only=False)  # our own file: python RNG state is a tuple
    optimizer.load_state_dict(state["optimizer"])
    random.setstate(state["rng"]["python"])
    torch.set_rng_state(state["rng"]["torch"])
    return Resumed(step=int(state["step"]), path=path)
