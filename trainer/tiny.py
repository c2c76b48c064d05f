"""The tiny default policy: a Qwen2-architecture model built from a config, a character-level
tokenizer built in code, and the cold-start examples that teach it the R1 format.

Nothing is downloaded: the tokenizer has one token per printable ASCII character and the newline
plus the four R1 tags as single tokens, and round-trips through save_pretrained/from_pretrained offline.
"""

from __future__ import annotations

import random
import re
import string

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from trainer.code_tasks import cold_start_completion
from trainer.config import TinyModelConfig
from trainer.data import PromptItem

R1_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
_EXPRESSION = re.compile(r"\d+\s*[-+*/]\s*\d+")


def build_tokenizer() -> PreTrainedTokenizerFast:
    # The 95 printable ASCII characters, then the newline that code needs (last, so that every
    # other character keeps its id).
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK, *R1_TAGS, *string.printable[:95], "\n"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every character is its own token; the tags, registered as added tokens, are matched first.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in R1_TAGS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, padding_side="left",
        model_max_length=512,
    )
    return fast


def build_model(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerFast, seed: int) -> Qwen2ForCausalLM:
    import torch

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return Qwen2ForCausalLM(config)


def cold_start_examples(prompts: list[PromptItem], n: int, correct_fraction: float, seed: int) -> list[dict[str, str]]:
    """R1-format SFT examples: `<think>a+b=c</think><answer>c</answer>` for `a+b` prompts, and
    for generated code tasks their fixed answer form (trainer/code_tasks.py) with c as the code.

    A share `correct_fraction` of them has the right c; the rest has c drawn uniformly from the
    answers seen among the prompts of the same task, so the model learns the format, to restate
    the task and where its answer goes, but not the answer itself.
    """
    rng = random.Random(seed)
    answers: dict[str, list[str]] = {}
    for p in prompts:
        answers.setdefault(p.task, []).append(p.answer)
    out = []
    for _ in range(n):
        p = rng.choice(prompts)
        c = p.answer if rng.random() < correct_fraction else rng.choice(sorted(set(answers[p.task])))
        completion = cold_start_completion(p, c)
        if completion is None:
            match = _EXPRESSION.search(p.prompt)
            if match is None:
                raise ValueError(f"prompt {p.id}: no arithmetic expression like '3+4' nor a generated code task "
                                 "to build a cold-start example from (generated examples are the tiny tasks': "
                                 "give sft.data, or sft.steps: 0)")
            completion = f"<think>{match.group(0)}={c}</think><answer>{c}</answer>"
        out.append({"prompt": p.prompt, "completion": completion})
    return out
