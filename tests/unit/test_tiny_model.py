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


def test_sampling_logps_match_a_forward_pass_regardless_of_padding(policy) -> None:
    model, tok = policy
    prompts = ["What is 1+2?", "Hi"]  # different lengths: the short one is left-padded
    ids = sample(model, tok, prompts, num_samples=3, max_new_tokens=8, temperature=1.0, seed=0)
    expanded = [p for p in prompts for _ in range(3)]
    together = completion_logps(model, make_batch(tok, expanded, ids))
    for i, row in enumerate(ids):
        alone = completion_logps(model, make_batch(tok, [expanded[i]], [row]))
        assert torch.allclose(together[i, : len(row)], alone[0, : len(row)], atol=1e-5)


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
