"""What the policy reads: each prompt rendered once, before training, for the model at hand.

- a base model (`data.template: r1_zero`): the question wrapped in DeepSeek-R1-Zero's prompt,
  verbatim from the paper (Table 1; "prompt" there is replaced by the question);
- an instruct model (`model.chat_template: true`): the tokenizer's own chat template, with an
  optional system turn (`model.system_prompt`), a user turn holding the question and the
  assistant's generation prompt, as the model saw in its own post-training;
- otherwise the question as it is (the tiny default, trained on bare prompts).

The rendered text is the `PromptItem.prompt` everything downstream uses (rollouts, the learner's
forward pass, SFT examples); templates that add special tokens (BOS, role markers) write them as
text, which is why prompts are always tokenized without adding special tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trainer.config import ConfigError, DataConfig, ModelConfig
from trainer.data import PromptItem

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: prompt. Assistant:"
)
"""DeepSeek-R1 (arXiv 2501.12948), Table 1; `prompt` is the question's slot."""


def r1_zero(question: str) -> str:
    head, _, tail = R1_ZERO_TEMPLATE.rpartition("prompt")
    return head + question + tail


def render(question: str, model: ModelConfig, data: DataConfig, tokenizer: Any) -> str:
    if data.template == "r1_zero":
        return r1_zero(question)
    if not model.chat_template:
        return question
    messages = [{"role": "user", "content": question}]
    if model.system_prompt is not None:
        messages.insert(0, {"role": "system", "content": model.system_prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def render_prompts(items: list[PromptItem], model: ModelConfig, data: DataConfig, tokenizer: Any) -> list[PromptItem]:
    """The prompts as the policy reads them (see the module docstring)."""
    if model.chat_template and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"model.chat_template: the tokenizer of {model.init!r} has no chat template")
    return [dataclasses.replace(p, prompt=render(p.prompt, model, data, tokenizer)) for p in items]
