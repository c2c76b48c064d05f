"""A policy is any transformers causal LM plus its tokenizer. Loading, batching, log-probs, sampling.

Batches are laid out [left-padded prompt | right-padded completion], so every completion starts
at the same column and completion log-probs are one slice of the logits. Position ids come from
the attention mask, which makes a row's log-probs independent of how much padding it got.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from trainer.config import ModelConfig


def limit_threads() -> None:
    """One torch thread per process: on a shared 2-core machine two threads ran ~20x slower.
    (Also silences transformers' per-save progress bars, which would interleave with ours.)"""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once parallel work started in this process
        pass


def load_policy(cfg: ModelConfig, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Build the tiny model or load a local checkpoint directory (never from the network)."""
    if cfg.init == "tiny":
        from trainer.tiny import build_model

        tokenizer = load_tokenizer(cfg)
        return build_model(cfg.tiny, tokenizer, seed), tokenizer
    return load_checkpoint(cfg.init)


def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """The policy's tokenizer alone (cheap: prompts are rendered and checked before Ray starts)."""
    if cfg.init == "tiny":
        from trainer.tiny import build_tokenizer

        return build_tokenizer()
    return _checkpoint_tokenizer(_checkpoint_dir(cfg.init))


def _checkpoint_dir(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a model checkpoint (no config.json)")
    return path


def _checkpoint_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # Llama-style tokenizers ship none; padding is always masked out
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_checkpoint(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    path = _checkpoint_dir(path)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    return model, _checkpoint_tokenizer(path)


@dataclass
class Batch:
    """Token tensors for a batch of (prompt, completion) pairs."""

    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P)
    completion_ids: torch.Tensor  # (B, T) right-padded
    completion_mask: torch.Tensor  # (B, T) 1 on completion tokens up to and including EOS


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    return enc["input_ids"], enc["attention_mask"]


def pad_completions(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max(len(s) for s in sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def pad_prompts(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt token ids -> (ids (B, P), mask (B, P)), the layout `encode_prompts` makes."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids, mask


def make_batch(tokenizer: PreTrainedTokenizerBase, prompts: list[str], completions: list[list[int]]) -> Batch:
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts)
    completion_ids, completion_mask = pad_completions(completions, tokenizer.pad_token_id)
    return Batch(prompt_ids, prompt_mask, completion_ids, completion_mask)


def completion_logps(model: PreTrainedModel, batch: Batch, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs of the completion tokens under `model` at `temperature` -> (B, T)."""
    input_ids = torch.cat([batch.prompt_ids, batch.completion_ids], dim=1)  # (B, P+T)
    attention = torch.cat([batch.prompt_mask, batch.completion_mask], dim=1)  # (B, P+T)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)  # (B, P+T)
    t = batch.completion_ids.size(1)
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions).logits  # (B, P+T, V)
    logits = logits[:, -t - 1 : -1, :] / temperature  # (B, T, V): position p predicts token p+1
    logps = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    return logps.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)


def cut_at_eos(row: list[int], eos_id: int) -> list[int]:
    """Generated ids up to and including the first EOS; generate pads only after an EOS."""
    return row[: row.index(eos_id) + 1] if eos_id in row else row


@dataclass(frozen=True)
class Sampled:
    token_ids: list[int]
    """Generated ids up to and including the first EOS."""
    logps: list[float]
    """Log-prob of each token under the sampling policy at the sampling temperature (empty when
    `sample` was asked for none)."""


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    num_samples: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    with_logps: bool = True,
) -> list[Sampled]:
    """Draw `num_samples` completions per prompt (grouped consecutively) with plain ancestral sampling.

    The log-probs come from the logits `generate` sampled from (as vLLM returns them), so no
    second forward pass is needed; they equal `completion_logps` of the same weights. Without
    `with_logps` generate keeps no logits (a (B, V) tensor per token for a large vocabulary).
    """
    from transformers import GenerationConfig

    torch.manual_seed(seed)
    expanded = [p for p in prompts for _ in range(num_samples)]
    prompt_ids, prompt_mask = encode_prompts(tokenizer, expanded)
    generation = GenerationConfig(
        do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        output_logits=with_logps, return_dict_in_generate=True,
    )
    was_training = model.training
    model.eval()
    out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=generation)
    model.train(was_training)
    generated = out.sequences[:, prompt_ids.size(1) :]  # (B*n, T)
    logps = torch.zeros(generated.shape)  # (B*n, T)
    for t, step_logits in enumerate(out.logits or ()):  # (B*n, V) each, unprocessed
        step_logps = torch.log_softmax(step_logits.float() / temperature, dim=-1)  # (B*n, V)
        logps[:, t] = step_logps.gather(-1, generated[:, t : t + 1]).squeeze(-1)
    rows = [cut_at_eos(row, tokenizer.eos_token_id) for row in generated.tolist()]
    return [Sampled(row, logps[i, : len(row)].tolist() if with_logps else []) for i, row in enumerate(rows)]
