"""reward_curve.png from metrics.jsonl (matplotlib, headless): the step means as lines, the
evaluations (eval/pass@1, eval/cons@K, on the steps that have them) as marked lines."""

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
    for key in sorted({k for r in rows for k in r if k.startswith(("eval/pass@", "eval/cons@"))}):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        ax.plot([s for s, _ in points], [v for _, v in points], marker="o", linestyle="--", label=key)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean over the step's completions")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
