"""Run in a venv holding TRL 1.16.0 and arbiter's core: score a batch through TRL's own reward step.

    python score_with_trl.py    # prints one JSON line: what TRL computed and logged

GRPOTrainer._calculate_rewards calls each reward function with the dataset's columns as keyword
lists (`answer` as an int, as a pandas-built dataset gives it, `language`) and its logging hooks.
"""

from __future__ import annotations

import json
import math

import numpy as np
from trl_rewards import calculate_rewards  # beside this script, so the repository stays off sys.path

import rewards
from rewards.adapters import trl_reward_func

PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]
COMPLETIONS = [
    [{"role": "assistant", "content": "<think>\nadd\n</think>\n<answer>\n\\boxed{4}\n</answer>"}],
    [{"role": "assistant", "content": "<think>\nadd\n</think>\n<answer>\n\\boxed{5}\n</answer>"}],
    [{"role": "assistant", "content": "The answer is 4."}],
]


def main() -> None:
    inputs = [{"prompt": PROMPT, "answer": np.int64(4), "language": "en"} for _ in COMPLETIONS]
    funcs = [trl_reward_func("math"), trl_reward_func("format"), trl_reward_func("language")]
    rewards_, names, logged = calculate_rewards(funcs, inputs, [PROMPT] * len(COMPLETIONS), COMPLETIONS)
    print(json.dumps({
        "arbiter_from": rewards.__file__,
        "names": names,
        "rewards": [[None if math.isnan(r) else r for r in row] for row in rewards_],
        "metrics": dict(logged.metrics),
        "verdicts": dict(logged.extra),
    }))


if __name__ == "__main__":
    main()
