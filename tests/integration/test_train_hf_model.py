"""`arbiter train` on a user's own model and data: a local Hugging Face model directory that is not
the tiny default (Llama architecture, its own BPE tokenizer, a ChatML chat template, safetensors),
prompts rendered with that chat template and a system prompt, read from a Parquet file whose
columns have other names and whose answers are GSM8K solutions; evaluation during training from a
JSONL file with the same columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.local_hf_model import build_chat_model

REPO = Path(__file__).resolve().parents[2]
STEPS = 3


def gsm8k_rows(pairs: list[tuple[int, int]]) -> dict[str, list[str]]:
    return {
        "question": [f"What is {a}+{b}?" for a, b in pairs],
        "solution": [f"{a} plus {b} makes <<{a}+{b}={a + b}>>{a + b}.\n#### {a + b}" for a, b in pairs],
        "uid": [f"sum-{a}-{b}" for a, b in pairs],
    }


@pytest.mark.slow
def test_a_local_chat_model_trains_on_a_parquet_file_with_other_column_names(tmp_path: Path) -> None:
    model_dir = build_chat_model(tmp_path / "chat-llama")
    pq.write_table(pa.table(gsm8k_rows([(a, b) for a in range(5) for b in range(5)])), tmp_path / "train.parquet")
    held_out = gsm8k_rows([(a, b) for a in range(5, 8) for b in range(2)])
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(dict(zip(held_out, row, strict=True))) + "\n"
                                                 for row in zip(*held_out.values(), strict=True)))
    config = {
        "model": {"init": str(model_dir), "chat_template": True,
                  "system_prompt": "Think inside <think> tags, then answer inside <answer> tags."},
        # A short cold start on the task's own prompts, rendered with the chat template.
        "sft": {"steps": 150, "batch_size": 16, "generated_examples": 200, "generated_correct_fraction": 0.5},
        "data": {"prompts": str(tmp_path / "train.parquet"), "prompt_field": "question", "answer_field": "solution",
                 "id_field": "uid", "task": "math", "answer_format": "gsm8k"},
        "grpo": {"steps": STEPS, "prompts_per_step": 8, "group_size": 4, "max_completion_tokens": 32},
        "rollout": {"num_workers": 2, "chunks_per_step": 2},
        "eval": {"prompts": str(tmp_path / "eval.jsonl"), "every_steps": 2, "samples_per_prompt": 4},
        "rewards": {"backend": "standalone"},
        "output": {"checkpoint_every_steps": 1000},
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    output = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "arbiter", "train", "--config", str(tmp_path / "train.yaml"), "--output", str(output),
         "--no-progress"],
        cwd=REPO, env={**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"},
        capture_output=True, text=True, timeout=480,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    print("figures:", [{k: r[k] for k in ("step", "reward_mean", "format_mean", "grad_norm", "eval/pass@1") if k in r}
                       for r in rows])
    assert [r["step"] for r in rows] == list(range(STEPS))
    assert all(r["groups"] == 8 and r["reward_faults"] == 0 for r in rows)
    assert any(r["grad_norm"] > 0 for r in rows)  # the rewards told completions apart: the policy moved
    # Evaluated after update 2 (every_steps) and after the last; pass@1 and cons@4 over 6 held-out prompts.
    assert [("eval/pass@1" in r) for r in rows] == [False, True, True]
    for row in rows[1:]:
        assert 0.0 <= row["eval/pass@1"] <= 1.0 and 0.0 <= row["eval/cons@4"] <= 1.0
        assert row["eval/faults"] == 0
    assert (output / "reward_curve.png").stat().st_size > 0
    final = output / "checkpoints" / f"step-{STEPS:06d}"
    assert (final / "model.safetensors").is_file() and (final / "chat_template.jinja").is_file()
    assert json.loads((final / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def test_eval_reads_the_prompts_as_a_training_config_does(tmp_path: Path, capsys) -> None:
    from arbiter.cli import main

    model_dir = build_chat_model(tmp_path / "chat-llama")
    pq.write_table(pa.table(gsm8k_rows([(1, 2), (3, 4), (2, 2)])), tmp_path / "test.parquet")
    sets = ["data.prompt_field=question", "data.answer_field=solution", "data.id_field=uid", "data.task=math",
            "data.answer_format=gsm8k", "model.chat_template=true"]
    per_prompt = tmp_path / "eval.jsonl"
    assert main(["eval", "--model", str(model_dir), "--prompts", str(tmp_path / "test.parquet"), "-k", "2",
                 "--max-new-tokens", "8", "--output", str(per_prompt), *(a for s in sets for a in ("--set", s))]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["prompts"] == 3 and summary["faults"] == 0 and "cons@2" in summary
    assert [json.loads(line)["id"] for line in per_prompt.read_text().splitlines()] == ["sum-1-2", "sum-3-4",
                                                                                        "sum-2-2"]
