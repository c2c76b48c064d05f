"""TRL 1.16's own reward step, `GRPOTrainer._calculate_rewards`, run on just the attributes it reads.

No model or dataset is needed: the trainer's method is called unbound on a namespace carrying the
accelerator, state and logging hooks it uses, so the reward functions see exactly the call TRL
makes (prompts, completions, completion_ids, every dataset column as a keyword list, and the
`trainer_state`, `log_metric`, `log_extra` hooks). Used by the unit tests and by the beside-TRL
install test, which runs it with the installed arbiter.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any


def calculate_rewards(reward_funcs: list, inputs: list[dict], prompts: list, completions: list
                      ) -> tuple[list[list[float]], list[str], SimpleNamespace]:
    """(rewards per completion and function, TRL's names for the functions, what was logged)."""
    from accelerate import PartialState
    from transformers import TrainerState
    from trl.trainer.grpo_trainer import GRPOTrainer
    from trl.trainer.utils import get_callable_name

    PartialState()  # accelerate's single-process state, which `gather` consults
    logged = SimpleNamespace(metrics=defaultdict(list), extra=defaultdict(list))
    trainer = SimpleNamespace(
        accelerator=SimpleNamespace(device="cpu", is_main_process=True),
        args=SimpleNamespace(report_to=[]),
        state=TrainerState(),
        reward_funcs=reward_funcs,
        reward_processing_classes=[None] * len(reward_funcs),
        reward_func_names=[get_callable_name(f) for f in reward_funcs],
        environments=None,
        _log_completion_extra=lambda column, values: logged.extra[column].extend(values),
        _log_metric=lambda name, value: logged.metrics[name].append(value),
    )
    completion_ids: list[Any] = [[0] * len(str(c)) for c in completions]
    rewards = GRPOTrainer._calculate_rewards(trainer, inputs, prompts, completions, completion_ids)
    return rewards.tolist(), trainer.reward_func_names, logged
