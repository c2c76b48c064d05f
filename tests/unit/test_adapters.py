"""TRL and verl adapters, called the way those frameworks call reward functions."""

from __future__ import annotations

import importlib.util
import math
import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from rewards.adapters import completion_text, compute_score, plain, trl_reward_func, verl_reward_metrics
from rewards.types import SampleError
from tests.peers.trl_rewards import calculate_rewards

GOOD = "<think>\nadd the numbers\n</think>\n<answer>\n\\boxed{5}\n</answer>"
BAD = "The answer is 5."
CHINESE = "<think>\n我们先计算这个和，然后再检查一遍。\n</think>\n<answer>5</answer>"


@pytest.fixture(scope="module")
def grpo_calculate_rewards():
    """TRL 1.16's own GRPOTrainer._calculate_rewards (see tests/peers/trl_rewards.py)."""
    return calculate_rewards


def _conversation(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_trl_rewards_through_grpo_trainer(grpo_calculate_rewards) -> None:
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}]] * 3
    inputs = [{"prompt": p, "answer": "5", "language": "en"} for p in prompts]
    completions = [_conversation(GOOD), _conversation(BAD), _conversation(CHINESE)]
    funcs = [trl_reward_func("format"), trl_reward_func("tag_count"), trl_reward_func("language")]
    rewards, names, _ = grpo_calculate_rewards(funcs, inputs, prompts, completions)
    assert names == ["arbiter_format", "arbiter_tag_count", "arbiter_language"]
    assert rewards[0] == [1.0, 1.0, 1.0]
    assert rewards[1][:2] == [0.0, 0.0] and math.isnan(rewards[1][2])  # no CoT: language not applicable -> NaN
    assert rewards[2] == [1.0, 1.0, 0.0]


def test_trl_math_reward_reads_the_solution_column(grpo_calculate_rewards) -> None:
    prompts = ["What is 2 + 3?", "What is 2 + 3?"]
    inputs = [{"prompt": p, "solution": 5} for p in prompts]  # numeric ground truth, open-r1's column name
    completions = [GOOD, GOOD.replace("5", "6")]
    rewards, _, logged = grpo_calculate_rewards([trl_reward_func("math")], inputs, prompts, completions)
    assert [row[0] for row in rewards] == [1.0, 0.0]
    assert logged.extra["arbiter_math_verdict"] == ["correct", "incorrect"]
    assert logged.metrics["arbiter_math/fault_rate"] == [0.0]
    assert logged.metrics["arbiter_math/not_applicable_rate"] == [0.0]


def test_trl_logs_the_not_applicable_rate_beside_the_fault_rate(grpo_calculate_rewards) -> None:
    prompts = ["p"] * 4
    inputs = [{"prompt": "p", "language": "en"}] * 4
    completions = [GOOD, BAD, BAD, "<answer>x</answer>"]  # no <think>: the language check does not apply
    rewards, _, logged = grpo_calculate_rewards([trl_reward_func("language")], inputs, prompts, completions)
    assert rewards[0] == [1.0] and all(math.isnan(row[0]) for row in rewards[1:])
    assert logged.metrics["arbiter_language/not_applicable_rate"] == [0.75]
    assert logged.metrics["arbiter_language/fault_rate"] == [0.0]
    assert logged.extra["arbiter_language_verdict"] == ["correct"] + ["not_applicable"] * 3


def test_trl_columns_of_numpy_values_score_like_python_ones() -> None:
    func = trl_reward_func("math")
    rewards = func(prompts=["p"] * 3, completions=[GOOD] * 3,
                   answer=[np.int64(5), np.str_("5"), np.float64(5.0)], id=list(np.arange(3)))
    assert rewards == [1.0, 1.0, 1.0]
    cosine = trl_reward_func("cosine_length")
    assert cosine(prompts=["p"], completions=[""], metadata=[{"correct": np.bool_(True)}]) == [1.0]


def test_trl_task_reward_is_the_routed_weighted_sum(grpo_calculate_rewards) -> None:
    prompts = ["p"]
    rewards, names, _ = grpo_calculate_rewards([trl_reward_func(task="format")], [{"prompt": "p"}], prompts, [GOOD])
    assert names == ["arbiter_format"] and rewards == [[1.0]]


def test_trl_malformed_reference_is_none_and_counted_as_a_fault() -> None:
    func = trl_reward_func("format")
    metrics: dict[str, float] = {}
    rewards = func(
        prompts=["p", "p"],
        completions=[GOOD, GOOD],
        answer=["5", {"not": "an answer"}],
        log_metric=lambda name, value: metrics.__setitem__(name, value),
    )
    assert rewards == [1.0, None]
    assert metrics == {"arbiter_format/fault_rate": 0.5, "arbiter_format/not_applicable_rate": 0.0}


def test_trl_metadata_column_reaches_the_verifier() -> None:
    func = trl_reward_func("cosine_length")
    rewards = func(prompts=["p", "p"], completions=["", ""], metadata=[{"correct": True}, {"correct": False}])
    assert rewards == [1.0, -1.0]  # empty completions: the cosine's extremes, correctness from metadata


def test_trl_reward_function_pickles_and_keeps_its_name() -> None:
    func = pickle.loads(pickle.dumps(trl_reward_func("tag_count")))
    assert func.__name__ == "arbiter_tag_count"
    assert func(prompts=["p"], completions=[GOOD]) == [1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "exactly one"), ({"verifier": "format", "task": "format"}, "exactly one"),
     ({"verifier": "fromat"}, "'fromat'"), ({"task": "poetry"}, "'poetry'")],
)
def test_trl_reward_func_rejects_bad_targets(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trl_reward_func(**kwargs)


def test_completion_text_reads_strings_messages_and_text_parts() -> None:
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "t"},
                            {"role": "assistant", "content": "b"}]) == "b"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "x"}]}]) == "x"
    with pytest.raises(SampleError):
        completion_text(42)


def _load_like_verl(tmp_path: Path, reward_kwargs: dict):
    """verl's get_custom_reward_fn: load the user's file by path, wrap with reward_kwargs."""
    path = tmp_path / "my_reward.py"
    path.write_text("from rewards.adapters import compute_score  # noqa: F401\n")
    spec = importlib.util.spec_from_file_location("custom_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    raw_fn = module.compute_score

    def wrapped_fn(*args, **kwargs):
        return raw_fn(*args, **kwargs, **reward_kwargs)

    return wrapped_fn


def _naive_reward_manager(fn, items: list[dict]) -> tuple[list[float], dict[str, list]]:
    """The loop of verl's NaiveRewardManager: score, take result["score"], collect extra keys."""
    rewards, extra = [], defaultdict(list)
    for item in items:
        result = fn(
            data_source=item["data_source"],
            solution_str=item["response"],
            ground_truth=item["reward_model"]["ground_truth"],
            extra_info=item.get("extra_info"),
        )
        rewards.append(result["score"] if isinstance(result, dict) else result)
        for key, value in result.items():
            extra[key].append(value)
    return rewards, extra


def test_verl_compute_score_through_naive_reward_manager(tmp_path: Path) -> None:
    fn = _load_like_verl(tmp_path, {"verifier": "format"})
    items = [
        {"data_source": "gsm8k", "response": GOOD, "reward_model": {"ground_truth": "5"}, "extra_info": {"index": 0}},
        {"data_source": "gsm8k", "response": BAD, "reward_model": {"ground_truth": "5"}, "extra_info": {"index": 1}},
    ]
    rewards, extra = _naive_reward_manager(fn, items)
    assert rewards == [1.0, 0.0]
    assert extra == {"score": [1.0, 0.0], "acc": [1.0, 0.0], "verdict": ["correct", "incorrect"], "fault": [0.0, 0.0],
                     "masked": [0.0, 0.0]}


def test_verl_task_comes_from_extra_info_or_data_source(tmp_path: Path) -> None:
    fn = _load_like_verl(tmp_path, {})
    items = [
        {"data_source": "format", "response": GOOD, "reward_model": {"ground_truth": ""}},
        {"data_source": "mine", "response": GOOD, "reward_model": {"ground_truth": ""},
         "extra_info": {"task": "format"}},
    ]
    assert _naive_reward_manager(fn, items)[0] == [1.0, 1.0]


def test_verl_math_task_checks_the_ground_truth() -> None:
    assert compute_score("math", GOOD, "5")["acc"] == 1.0
    assert compute_score("math", GOOD, "6")["acc"] == 0.0


def test_verl_unknown_data_source_is_a_clear_error() -> None:
    with pytest.raises(SampleError) as err:
        compute_score("openai/gsm8k", GOOD, "5")
    assert err.value.field == "data_source" and "reward_kwargs.task" in err.value.message


def test_verl_malformed_ground_truth_is_a_flagged_fault_score(tmp_path: Path) -> None:
    fn = _load_like_verl(tmp_path, {"task": "format", "fault_score": -1.0})
    items = [{"data_source": "x", "response": GOOD, "reward_model": {"ground_truth": {"bad": "type"}}}]
    rewards, extra = _naive_reward_manager(fn, items)
    assert rewards == [-1.0]
    assert extra["verdict"] == ["error"] and extra["fault"] == [1.0]


def test_verl_routing_file_is_honoured(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text("tasks:\n  quiz: {tag_count: 1.0}\n")
    result = compute_score("quiz", "<think>x</think>", "", routing=str(routing))
    assert result["score"] == 0.5


def test_verl_not_applicable_sample_is_masked_and_still_scores_a_number(tmp_path: Path) -> None:
    fn = _load_like_verl(tmp_path, {"task": "math", "fault_score": -1.0})
    items = [
        {"data_source": "x", "response": GOOD, "reward_model": {"ground_truth": "5"}},
        {"data_source": "x", "response": GOOD, "reward_model": {"ground_truth": "\\frac{1}{"}},  # unparseable gold
        {"data_source": "x", "response": GOOD, "reward_model": {"ground_truth": ["5"]}},  # malformed: a fault
    ]
    rewards, extra = _naive_reward_manager(fn, items)
    assert rewards == [2.0, -1.0, -1.0]
    assert extra["verdict"] == ["correct", "not_applicable", "error"]
    assert extra["masked"] == [0.0, 1.0, 0.0] and extra["fault"] == [0.0, 0.0, 1.0]
    assert verl_reward_metrics(extra) == {
        "arbiter/samples": 3.0, "arbiter/fault": 1.0, "arbiter/masked": 1.0,
        "arbiter/fault_rate": 1 / 3, "arbiter/masked_rate": 1 / 3,
        "arbiter/verdict/correct": 1.0, "arbiter/verdict/error": 1.0, "arbiter/verdict/not_applicable": 1.0,
    }


def test_verl_reward_metrics_read_the_numpy_arrays_verl_keeps() -> None:
    extra = {"verdict": np.array(["correct", "incorrect"]), "fault": np.array([0.0, 0.0]),
             "masked": np.array([0.0, 0.0])}
    metrics = verl_reward_metrics(extra, prefix="val")
    assert metrics["val/samples"] == 2.0 and metrics["val/masked_rate"] == 0.0
    assert metrics["val/verdict/incorrect"] == 1.0
    assert verl_reward_metrics({}) == {"arbiter/samples": 0.0, "arbiter/fault": 0.0, "arbiter/masked": 0.0}


@pytest.mark.parametrize("gold", [5, np.int64(5), np.int32(5), np.float64(5.0), np.float32(5.0), "5", np.str_("5")])
def test_verl_numpy_scalars_and_strings_are_accepted_like_python_ones(gold) -> None:
    result = compute_score(np.str_("math"), GOOD, gold, {"index": np.int64(7), "task": np.str_("math")})
    assert (result["verdict"], result["acc"], result["fault"]) == ("correct", 1.0, 0.0)


def test_plain_turns_numpy_values_into_python_ones() -> None:
    value = plain({np.str_("tests"): np.array(["assert f(1) == 2"]), "ok": np.bool_(True), "n": [np.int64(3)],
                   "x": 0.5, "s": "text"})
    assert value == {"tests": ["assert f(1) == 2"], "ok": True, "n": [3], "x": 0.5, "s": "text"}
    assert [type(v) for v in value.values()] == [list, bool, list, float, str]
    assert type(next(iter(value))) is str and type(value["n"][0]) is int
