"""The learner group on real Ray actors: two FSDP2 ranks (gloo) in micro-batches give the loss and
gradients of the plain whole-batch step for every loss type; a run with two ranks matches one
rank at step 0 and learns; a learner rank killed mid-run ends the run naming it, and `--resume`
finishes it from the last checkpoint."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import torch

from rewards.compose import ScoredSample
from rewards.types import Verdict
from tests.learner_cases import make_rows, prompt_text, reference_step
from trainer.advantages import group_advantages
from trainer.config import GRPOConfig, LearnerConfig, TinyModelConfig
from trainer.data import PromptItem
from trainer.learner_group import LearnerGroup
from trainer.pipeline import Group
from trainer.rollout import Completion
from trainer.tiny import build_model, build_tokenizer

REPO = Path(__file__).resolve().parents[2]
G, NUM_GROUPS = 4, 5  # 5 groups on 2 ranks: 3 and 2, each split into micro-batches of its own count


def step_groups(tok, model, seed: int = 0) -> tuple[list[Completion], list[Group], list[float]]:
    rows, _ = make_rows(tok, model, n=G * NUM_GROUPS, seed=seed, group_size=G)
    rewards = torch.Generator().manual_seed(seed)
    reward = (torch.rand(len(rows), generator=rewards) > 0.5).float().tolist()
    prompts = [PromptItem(f"p{i}", prompt_text(i), "0", "math") for i in range(NUM_GROUPS)]
    completions = [Completion(prompts[i // G], i % G, r.completion_ids, "", r.old_logps, 0) for i, r in enumerate(rows)]
    groups = [Group(prompts[k], completions[k * G : (k + 1) * G],
                    [ScoredSample(f"{k}-{j}", reward[k * G + j], Verdict.CORRECT) for j in range(G)])
              for k in range(NUM_GROUPS)]
    return completions, groups, group_advantages(reward, G).float().tolist()


@pytest.mark.parametrize(("loss_type", "beta"), [("grpo", 0.04), ("bnpo", 0.0), ("dr_grpo", 0.0), ("dapo", 0.04)])
def test_two_fsdp2_ranks_in_micro_batches_match_the_whole_batch_step(ray_cluster, loss_type, beta) -> None:
    torch.set_num_threads(1)
    tok = build_tokenizer()
    model, ref = build_model(TinyModelConfig(), tok, seed=0), build_model(TinyModelConfig(), tok, seed=1)
    completions, groups, advantages = step_groups(tok, model)
    cfg = GRPOConfig(group_size=G, loss_type=loss_type, beta=beta, max_grad_norm=1e9, max_completion_tokens=16)
    rows, _ = make_rows(tok, model, n=G * NUM_GROUPS, group_size=G)
    want_loss, want_grads = reference_step(model, ref, tok, rows, advantages, cfg)
    learner = LearnerGroup.start(LearnerConfig(ranks=2, micro_batch_tokens=64, num_cpus_per_rank=0.5), cfg, model,
                                 ref.state_dict() if beta else None, tok)
    try:
        assert learner.remote and len({p.pid for p in learner.places}) == 2

        async def step():
            await learner.prepare(completions)
            return await learner.update(groups, 0, 0), await learner.full_gradients()

        result, grads = asyncio.run(step())
    finally:
        learner.close()
    assert result.loss == pytest.approx(want_loss, abs=1e-6)
    assert result.groups_kept == NUM_GROUPS
    for name, grad in want_grads.items():
        assert torch.allclose(grads[name], grad, atol=1e-6, rtol=0), name


def test_a_two_rank_checkpoint_resumes_on_one_rank(ray_cluster, tmp_path) -> None:
    """Distributed Checkpoint reshards: two ranks' shards load into one rank, policy and optimizer."""
    torch.set_num_threads(1)
    tok = build_tokenizer()
    model = build_model(TinyModelConfig(), tok, seed=0)
    completions, groups, _ = step_groups(tok, model)
    cfg = GRPOConfig(group_size=G)

    async def step(learner: LearnerGroup):
        await learner.prepare(completions)
        await learner.update(groups, 3, 0)
        return await learner.publish()

    two = LearnerGroup.start(LearnerConfig(ranks=2, num_cpus_per_rank=0.5), cfg, model, None, tok)
    try:
        asyncio.run(step(two))
        asyncio.run(two.save(tmp_path / "dcp"))
        after_two = ray.get(asyncio.run(step(two)))  # the next step, from the saved state
    finally:
        two.close()
    one = LearnerGroup.start(LearnerConfig(), cfg, model, None, tok, resume_dir=tmp_path / "dcp")
    try:
        assert not one.remote
        after_one = ray.get(asyncio.run(step(one)))
    finally:
        one.close()
    for name, value in after_two.items():  # the same Adam step from the same moments
        assert torch.allclose(after_one[name], value, atol=1e-6, rtol=0), name


def descendants(pid: int) -> list[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        out += children
        frontier = children
    return out


def learner_rank_pids(driver: int) -> list[int]:
    pids = []
    for pid in descendants(driver):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::RankHost"):
                pids.append(pid)
        except OSError:
            continue
    return pids


def read_steps(output: Path) -> list[int]:
    path = output / "metrics.jsonl"
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_a_dead_learner_rank_ends_the_run_by_name_and_resume_finishes(tmp_path: Path) -> None:
    output = tmp_path / "run"
    sets = {"learner.ranks": 2, "learner.num_cpus_per_rank": 0.5, "learner.micro_batch_tokens": 256,
            "rewards.backend": "inprocess", "sft.steps": 20, "grpo.steps": 10, "grpo.prompts_per_step": 4,
            "grpo.group_size": 4, "rollout.chunks_per_step": 2, "output.checkpoint_every_steps": 2}
    args = [sys.executable, "-m", "arbiter", "train", "--output", str(output), "--no-progress",
            *[a for key, value in sets.items() for a in ("--set", f"{key}={value}")]]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while len(read_steps(output)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = learner_rank_pids(proc.pid)
        assert len(pids) == 2, pids
        os.kill(pids[-1], signal.SIGKILL)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-3000:]
    [line] = [line for line in out.splitlines() if line.startswith("arbiter train: learner rank")]
    print(line)
    assert f"(pid {pids[-1]}) on node " in line and "--resume" in line, line
    done = read_steps(output)
    assert len(done) < sets["grpo.steps"]
    resumed = subprocess.run([*args, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    assert read_steps(output) == list(range(sets["grpo.steps"]))
