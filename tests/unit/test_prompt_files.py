"""Prompt files as datasets come: JSONL or Parquet, any column names, GSM8K answers, the R1-Zero
template for base models and the tokenizer's chat template for instruct models."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.local_hf_model import build_chat_model
from trainer.config import ConfigError, DataConfig, ModelConfig, TrainConfig, from_dict
from trainer.data import DataError, gsm8k_final_answer, load_prompts
from trainer.policy import load_tokenizer
from trainer.templates import R1_ZERO_TEMPLATE, render_prompts

GSM8K_LIKE = {
    "question": ["Tom has 3 apples and gets 4 more. How many?", "What is 1,000 + 250?"],
    "solution": ["3 + 4 = <<3+4=7>>7\n#### 7", "1,000 + 250 = 1,250\n#### 1,250"],
    "uid": ["q-1", "q-2"],
    "subject": ["math", "math"],
}
GSM8K_FIELDS = DataConfig(prompt_field="question", answer_field="solution", id_field="uid", task_field="subject",
                          answer_format="gsm8k")


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def write_jsonl(path: Path, columns: dict[str, list]) -> Path:
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("write", [write_parquet, write_jsonl], ids=["parquet", "jsonl"])
def test_a_file_with_other_column_names_is_read_through_the_data_fields(tmp_path: Path, write) -> None:
    path = write(tmp_path / f"train.{'parquet' if write is write_parquet else 'jsonl'}", GSM8K_LIKE)
    items = load_prompts(path, GSM8K_FIELDS)
    assert [(p.id, p.prompt, p.answer, p.task) for p in items] == [
        ("q-1", "Tom has 3 apples and gets 4 more. How many?", "7", "math"),
        ("q-2", "What is 1,000 + 250?", "1250", "math"),
    ]


def test_ids_default_to_the_row_number_and_one_task_serves_the_file(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "p.parquet", {"problem": ["a", "b", "c"], "answer": [1, 2, 3]})
    items = load_prompts(path, DataConfig(prompt_field="problem", task="math"))
    assert [(p.id, p.answer, p.task) for p in items] == [("0", "1", "math"), ("1", "2", "math"), ("2", "3", "math")]


def test_the_files_own_id_column_is_used_when_it_has_one() -> None:
    items = load_prompts(Path(__file__).parents[2] / "examples" / "arith_prompts.jsonl")
    assert items[0].id == "add-0-0" and len({p.id for p in items}) == len(items)


@pytest.mark.parametrize("key, fields", [
    ("data.prompt_field", DataConfig(prompt_field="prompt")),
    ("data.answer_field", DataConfig(prompt_field="question", answer_field="answer")),
    ("data.id_field", DataConfig(prompt_field="question", answer_field="solution", id_field="id")),
    ("data.task_field", DataConfig(prompt_field="question", answer_field="solution")),
])
@pytest.mark.parametrize("write", [write_parquet, write_jsonl], ids=["parquet", "jsonl"])
def test_a_wrong_field_name_names_the_file_and_the_fields_it_has(tmp_path: Path, write, key, fields) -> None:
    path = write(tmp_path / f"train.{'parquet' if write is write_parquet else 'jsonl'}", GSM8K_LIKE)
    with pytest.raises(DataError) as error:
        load_prompts(path, fields)
    message = str(error.value)
    assert message.startswith(f"{key}: {path} has no field")
    assert "(its fields: question, solution, uid, subject)" in message


@pytest.mark.parametrize("solution, final", [
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"),
    ("#### 1,000,000", "1000000"),
    ("The loss is 3 dollars.\n#### -3", "-3"),
    ("half: 7/2\n#### 3.5", "3.5"),
    ("first #### 5 then corrected\n#### 6", "6"),
    ("the sum is 12,34\n#### 12,34", "12,34"),  # not a thousands separator: kept
    ("no final marker, 42", None),
    ("#### ", None),
])
def test_gsm8k_final_answer_is_what_follows_the_last_marker(solution: str, final: str | None) -> None:
    assert gsm8k_final_answer(solution) == final


def test_a_gsm8k_answer_without_a_final_marker_is_an_error_naming_the_row(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "g.parquet", {"question": ["q", "r"], "answer": ["#### 1", "just 2"]})
    with pytest.raises(DataError, match=r"g\.parquet row 1: data\.answer_format gsm8k: field 'answer' has no final"):
        load_prompts(path, DataConfig(prompt_field="question", task="math", answer_format="gsm8k"))


def test_an_empty_prompt_is_an_error_naming_the_row_and_field(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "e.parquet", {"prompt": ["fine", None], "answer": ["1", "2"]})
    with pytest.raises(DataError, match=r"e\.parquet row 1: field 'prompt' must be a non-empty string"):
        load_prompts(path, DataConfig(task="math"))


def test_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", {"prompt": ["a", "b"], "answer": ["1", "2"], "id": [7, 7]})
    with pytest.raises(DataError, match="duplicate prompt id '7'"):
        load_prompts(path, DataConfig(task="math"))


def test_an_unknown_file_type_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("prompt,answer\n")
    with pytest.raises(DataError, match=r"p\.csv: unknown prompt file type '\.csv': expected \.jsonl or \.parquet"):
        load_prompts(tmp_path / "p.csv")


def test_r1_zero_wraps_the_question_in_the_papers_template() -> None:
    [item] = render_prompts(load_prompts(Path(__file__).parents[2] / "examples" / "arith_prompts.jsonl")[:1],
                            ModelConfig(), DataConfig(template="r1_zero"), load_tokenizer(ModelConfig()))
    assert item.prompt == (
        "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
        "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
        "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
        "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
        "User: What is 0+0?. Assistant:"
    )
    assert R1_ZERO_TEMPLATE.count("prompt") == 1


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    return build_chat_model(tmp_path_factory.mktemp("hf") / "chat-llama")


def test_chat_template_renders_the_system_and_user_turns_and_the_generation_prompt(chat_model: Path,
                                                                                    tmp_path: Path) -> None:
    model = ModelConfig(init=str(chat_model), chat_template=True, system_prompt="Answer in <answer> tags.")
    path = write_parquet(tmp_path / "p.parquet", {"q": ["What is 2+2?"], "a": ["4"]})
    [item] = render_prompts(load_prompts(path, DataConfig(prompt_field="q", answer_field="a", task="math")), model,
                            DataConfig(), load_tokenizer(model))
    assert item.prompt == ("<|im_start|>system\nAnswer in <answer> tags.<|im_end|>\n"
                           "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    assert item.answer == "4"  # only what the policy reads changes


def test_chat_template_with_a_tokenizer_that_has_none_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"model\.chat_template: the tokenizer of 'tiny' has no chat template"):
        render_prompts([], ModelConfig(chat_template=True), DataConfig(), load_tokenizer(ModelConfig()))


@pytest.mark.parametrize("raw, message", [
    ({"model": {"system_prompt": "hi"}}, "model.system_prompt: needs model.chat_template"),
    ({"model": {"chat_template": True}, "data": {"template": "r1_zero"}}, "data.template: r1_zero is the prompt"),
    ({"data": {"answer_format": "math500"}}, "data.answer_format: expected one of"),
    ({"eval": {"every_steps": 0}}, "eval.every_steps: must be at least 1"),
    ({"eval": {"samples_per_prompt": 0}}, "eval.samples_per_prompt: must be at least 1"),
])
def test_inconsistent_prompt_settings_are_rejected_at_start_up(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, raw)


def test_the_readme_example_of_an_own_model_and_data_is_a_valid_config() -> None:
    import yaml

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("## Training on your own model and data")[1].split("```yaml")[1].split("```")[0]
    cfg = from_dict(TrainConfig, yaml.safe_load(block))
    assert cfg.model.chat_template and cfg.data.answer_format == "gsm8k" and cfg.eval.samples_per_prompt == 8
