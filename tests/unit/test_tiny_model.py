"""The tiny default policy: offline tokenizer, Qwen2 model, sampling log-probs, cold-start data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rewards.compose import score_sample
from rewards.types import Sample, Verdict
from trainer.config import ModelConfig
from trainer.data import PromptItem, load_prompts
from trainer.policy import completion_logps, cut_at_eos, load_checkpoint, load_policy, make_batch, sample
from trainer.tiny import R1_TAGS, build_tokenizer, cold_start_examples

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "arith_prompts.jsonl"


@pytest.fixture(scope="module")
def policy():
    torch.set_num_threads(1)
    return load_policy(ModelConfig(), seed=0)


def test_r1_tags_are_single_tokens_and_text_round_trips() -> None:
    tok = build_tokenizer()
    for tag in R1_TAGS:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    text = "What is 3+4? <think>3+4=7</think><answer>7</answer>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len("What is 3+4? ") + 1 + len("3+4=7") + 1 + 1 + 1 + 1
    assert tok.decode(ids) == text


def test_checkpoint_round_trips_offline(policy, tmp_path: Path) -> None:
    model, tok = policy
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, loaded_tok = load_checkpoint(tmp_path)
    text = "<think>1+1=2</think>"
    assert loaded_tok(text)["input_ids"] == tok(text)["input_ids"]
    batch = make_batch(tok, ["What is 1+1?"], [tok(text, add_special_tokens=False)["input_ids"]])
    assert torch.allclose(completion_logps(model, batch), completion_logps(loaded, batch))


def test_tiny_model_is_a_small_qwen2(policy) -> None:
    model, _ = policy
    assert model.config.model_type == "qwen2"
    assert sum(p.numel() for p in model.parameters()) < 500_000


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampling_logps_match_a_forward_pass_regardless_of_padding(policy, temperature) -> None:
    model, tok = policy
    prompts = ["What is 1+2?", "Hi"]  # different lengths: the short one is left-padded
    rows = sample(model, tok, prompts, num_samples=3, max_new_tokens=8, temperature=temperature, seed=0)
    expanded = [p for p in prompts for _ in range(3)]
    together = completion_logps(model, make_batch(tok, expanded, [r.token_ids for r in rows]), temperature)
    for i, row in enumerate(rows):
        alone = completion_logps(model, make_batch(tok, [expanded[i]], [row.token_ids]), temperature)
        assert len(row.logps) == len(row.token_ids)
        assert torch.allclose(together[i, : len(row.logps)], alone[0, : len(row.logps)], atol=1e-5)
        assert torch.allclose(torch.tensor(row.logps), alone[0, : len(row.logps)], atol=1e-5)


def test_generation_stops_after_eos() -> None:
    assert cut_at_eos([5, 6, 1, 0, 0], eos_id=1) == [5, 6, 1]
    assert cut_at_eos([5, 6, 7], eos_id=1) == [5, 6, 7]


def test_cold_start_examples_are_well_formed_and_only_partly_right() -> None:
    prompts = load_prompts(EXAMPLES)
    examples = cold_start_examples(prompts, 300, correct_fraction=0.2, seed=0)
    by_prompt = {p.prompt: p for p in prompts}
    verdicts = []
    for ex in examples:
        p = by_prompt[ex["prompt"]]
        scored = score_sample(Sample(id="x", task="math", completion=ex["completion"], answer=p.answer))
        assert scored.components["format"].verdict is Verdict.CORRECT
        verdicts.append(scored.components["math"].verdict is Verdict.CORRECT)
    assert 0.15 < sum(verdicts) / len(verdicts) < 0.45


def test_cold_start_needs_an_expression_in_the_prompt() -> None:
    with pytest.raises(ValueError, match="no arithmetic expression"):
        cold_start_examples([PromptItem("p", "Say hi", "hi", "math")], 1, 0.0, 0)


def test_dynamic_sampling_updates_on_exactly_the_informative_groups_rows(policy) -> None:
    import asyncio

    from rewards.compose import ScoredSample
    from trainer.config import GRPOConfig, LearnerConfig
    from trainer.learner_group import LearnerGroup
    from trainer.pipeline import Group
    from trainer.rollout import Completion

    model, tok = policy
    prompts = [PromptItem("flat", "What is 1+2?", "3", "math"), PromptItem("spread", "What is 2+2?", "4", "math")]
    rows = sample(model, tok, [p.prompt for p in prompts], num_samples=2, max_new_tokens=6, temperature=1.0, seed=0)
    completions = [Completion(prompts[i // 2], i % 2, tuple(r.token_ids), "", tuple(r.logps), 0)
                   for i, r in enumerate(rows)]
    rewards = [[1.0, 1.0], [1.0, 0.0]]  # the first group has no spread: zero advantage everywhere
    groups = [Group(prompts[g], completions[2 * g : 2 * g + 2],
                    [ScoredSample(f"{g}{j}", r, Verdict.CORRECT) for j, r in enumerate(rewards[g])]) for g in range(2)]
    cfg = GRPOConfig(group_size=2, dynamic_sampling=True, loss_type="bnpo")

    def update(groups: list[Group], dynamic: bool) -> dict[str, torch.Tensor]:
        step_cfg = GRPOConfig(**{**cfg.__dict__, "dynamic_sampling": dynamic})
        learner = LearnerGroup.start(LearnerConfig(), step_cfg, model, None, tok)  # one rank, in this process
        try:
            asyncio.run(learner.prepare([c for g in groups for c in g.completions]))
            assert asyncio.run(learner.update(groups, 20, 0)).groups_kept == 1
            return asyncio.run(learner.full_gradients())  # gradients: Adam would blow up round-off (k_proj.bias)
        finally:
            learner.close()

    filtered, alone = update(groups, dynamic=True), update(groups[1:], dynamic=False)
    for name, value in filtered.items():
        assert torch.allclose(value, alone[name], atol=1e-7), name
