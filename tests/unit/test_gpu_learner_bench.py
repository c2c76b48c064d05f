"""bench/gpu_learner.py: its code path (the learner rank's step in fp32 and bf16, with and without
gradient checkpointing) runs on CPU with a tiny model; without a GPU the real run skips in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_learner.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=300)


def test_gpu_learner_smoke_runs_every_setting_on_cpu() -> None:
    proc = run("--smoke")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[1:2] in (["on"], ["off"])]
    assert [(r[0], r[1]) for r in rows] == [("fp32", "off"), ("fp32", "on"), ("bf16", "off"), ("bf16", "on")]
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows)  # s/step, tokens/s
    assert "bf16 speed-up over fp32" in proc.stdout


def test_gpu_learner_without_a_gpu_skips_with_one_line() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the benchmark would run for real")
    proc = run()
    assert proc.returncode == 0
    assert proc.stdout.strip().splitlines() == ["gpu_learner: skipped, no CUDA GPU on this machine "
                                                "(--smoke runs the code path on CPU)"]
