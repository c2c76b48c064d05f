"""Run in a venv holding verl 0.9.1 and arbiter's core: score a batch through verl's own code.

    python score_with_verl.py WORKDIR    # prints one JSON line: what verl computed

verl's own Hydra config (ppo_trainer.yaml) is composed with the README's overrides
(`reward.custom_reward_function.*`), verl's RewardLoopWorker loads the tokenizer and the reward
manager from it (load_reward_manager -> get_custom_reward_fn -> the "naive" manager of the reward
loop) and scores a DataProto batch; the legacy NaiveRewardManager scores the same batch with the
same loaded function. Ground truths are numpy values, as verl's datasets hand them over.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import verl
from hydra import compose, initialize_config_dir
from verl import DataProto
from verl.experimental.reward_loop import RewardLoopWorker, migrate_legacy_reward_impl
from verl.trainer.ppo.reward import get_custom_reward_fn
from verl.workers.reward_manager.naive import NaiveRewardManager as LegacyNaiveRewardManager

import rewards
from rewards.adapters import verl_reward_metrics
from trainer.tiny import build_tokenizer

# (data_source, response, ground_truth, extra_info); the tiny tokenizer has no newline, so none here.
ROWS = [
    ("math", "<think>2+2</think><answer>\\boxed{4}</answer>", np.int64(4), {"index": np.int64(0)}),
    ("math", "<think>2+2</think><answer>\\boxed{5}</answer>", np.str_("4"), {"index": np.int64(1)}),
    ("math", "<think>2+2</think><answer>\\boxed{4}</answer>", "\\frac{1}{", {"index": 2}),  # unparseable gold
    ("my/data", "<think>2+2</think><answer>4</answer>", "", {"index": 3, "task": "format"}),
    ("math", "<think>2+2</think><answer>4</answer>", {"not": "a gold"}, {"index": 4}),  # malformed
]
OVERRIDES = [
    "reward.custom_reward_function.path={reward_file}",
    "reward.custom_reward_function.name=compute_score",
    "+reward.custom_reward_function.reward_kwargs.fault_score=-1.0",
    "actor_rollout_ref.model.path={tokenizer_dir}",
]


def batch(tokenizer) -> DataProto:
    prompts = [tokenizer("What is 2+2?")["input_ids"] for _ in ROWS]
    responses = [tokenizer(response)["input_ids"] for _, response, _, _ in ROWS]
    p_len, r_len = max(map(len, prompts)), max(map(len, responses))
    pad = tokenizer.pad_token_id
    prompt_ids = torch.tensor([[pad] * (p_len - len(p)) + p for p in prompts])  # left-padded, as verl does
    response_ids = torch.tensor([r + [pad] * (r_len - len(r)) for r in responses])
    mask = torch.tensor([[0] * (p_len - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (r_len - len(r))
                         for p, r in zip(prompts, responses, strict=True)])
    return DataProto.from_dict(
        tensors={"prompts": prompt_ids, "responses": response_ids, "attention_mask": mask,
                 "input_ids": torch.cat([prompt_ids, response_ids], dim=1)},
        non_tensors={
            "data_source": np.array([row[0] for row in ROWS], dtype=object),
            "reward_model": np.array([{"ground_truth": row[2], "style": "rule"} for row in ROWS], dtype=object),
            "extra_info": np.array([row[3] for row in ROWS], dtype=object),
        },
    )


def main(workdir: Path) -> None:
    reward_file = workdir / "my_reward.py"
    reward_file.write_text("from rewards.adapters import compute_score  # noqa: F401\n")
    tokenizer_dir = workdir / "tokenizer"
    build_tokenizer().save_pretrained(tokenizer_dir)
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        config = compose("ppo_trainer", overrides=[o.format(reward_file=reward_file, tokenizer_dir=tokenizer_dir)
                                                   for o in OVERRIDES])
    config = migrate_legacy_reward_impl(config)  # what verl's main_ppo does before building workers

    worker = RewardLoopWorker(config)
    data = batch(worker.input_tokenizer)
    outputs = worker.loop.run_until_complete(worker.compute_score_batch(data))
    # As RewardLoopManager.compute_rm_score assembles them: one numpy array per extra key.
    extra = {key: np.array([o["reward_extra_info"][key] for o in outputs]) for key in outputs[0]["reward_extra_info"]}
    rm_scores = worker.reward_manager.assemble_rm_scores(data, [o["reward_score"] for o in outputs])

    legacy = LegacyNaiveRewardManager(worker.input_tokenizer, num_examine=0, compute_score=get_custom_reward_fn(config))
    legacy_out = legacy(data, return_dict=True)

    print(json.dumps({
        "arbiter_from": rewards.__file__,
        "manager": type(worker.reward_manager).__module__ + "." + type(worker.reward_manager).__name__,
        "scores": [float(o["reward_score"]) for o in outputs],
        "rm_scores": rm_scores.sum(dim=-1).tolist(),
        "extra": {key: values.tolist() for key, values in extra.items()},
        "metrics": verl_reward_metrics(extra),
        "legacy_scores": legacy_out["reward_tensor"].sum(dim=-1).tolist(),
        "legacy_masked": legacy_out["reward_extra_info"]["masked"],
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
