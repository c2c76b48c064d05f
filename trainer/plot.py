"""reward_curve.png from metrics.jsonl (matplotlib, headless)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on training nodes
import matplotlib.pyplot as plt


def plot_metrics(metrics: Path, out: Path) -> None:
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    if not rows:
        return
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    tasks = sorted({key for r in rows for key in r if key.startswith("accuracy/")})
    per_task = [(key, key.replace("/", " ")) for key in tasks] if len(tasks) > 1 else []
    for key, label in (("accuracy_mean", "accuracy"), *per_task, ("format_mean", "format"), ("reward_mean", "reward")):
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            ax.plot(steps, [float("nan") if v is None else v for v in values], label=label)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean over the step's completions")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
