"""Generated code tasks for GRPO: prompts, their tests, the cold start's answer form, per-task accuracy."""

from __future__ import annotations

import pytest

from rewards.compose import ScoredSample
from rewards.format import StrictFormatVerifier
from rewards.routing import RoutingConfig
from rewards.types import Sample, Verdict, VerifierResult
from trainer.code_tasks import GENERATORS, cold_start_completion, linear_function_prompts
from trainer.config import ConfigError, load_config
from trainer.data import PromptItem
from trainer.learner import reward_metrics
from trainer.pipeline import Group
from trainer.tiny import cold_start_examples
from trainer.train import load_run_prompts


def test_linear_function_tasks_carry_assert_tests_of_their_own_function():
    prompts = linear_function_prompts()
    assert len(prompts) == 25 and len({p.id for p in prompts}) == 25
    task = next(p for p in prompts if p.id == "linear-3-2")
    assert task.prompt == "Write f(x) returning 3x+2." and task.task == "code"
    assert "assert f(7) == 23" in task.tests["test"]
    namespace: dict = {}
    exec("def f(x): return " + task.answer, namespace)
    for test in task.tests["test"]:
        exec(test, namespace)


def test_cold_start_answer_form_is_r1_formatted_with_one_fenced_def():
    task = linear_function_prompts()[0]
    completion = cold_start_completion(task, "5*x+1")
    assert completion == "<think>2x+1</think><answer>\n```\ndef f(x): return 5*x+1\n```\n</answer>"
    assert StrictFormatVerifier().score(Sample("s", "code", completion)).verdict is Verdict.CORRECT
    assert cold_start_completion(PromptItem("m", "What is 1+2?", "3", "math"), "3") is None


def test_cold_start_mixes_math_and_code_and_draws_wrong_answers_within_each_task():
    prompts = [PromptItem("m", "What is 1+2?", "3", "math"), *linear_function_prompts()]
    examples = cold_start_examples(prompts, 400, correct_fraction=0.0, seed=0)
    math = [e for e in examples if e["prompt"] == "What is 1+2?"]
    code = [e for e in examples if e["prompt"].startswith("Write f(x)")]
    assert math and code and all("def f(x)" not in e["completion"] for e in math)
    assert all("*x+" in e["completion"] for e in code)


def test_generated_families_join_the_prompts_file():
    cfg = load_config("configs/tiny-mix.yaml")
    prompts = load_run_prompts(cfg, RoutingConfig.from_dict({"tasks": cfg.rewards.routing}))
    assert {p.task for p in prompts} == {"math", "code"}
    assert len(prompts) == 25 + len(GENERATORS["linear_functions"]())


def test_a_config_with_neither_prompts_nor_generated_tasks_is_rejected():
    with pytest.raises(ConfigError, match="data"):
        load_config(None, {"data.prompts": None})


def test_per_task_accuracy_is_reported_for_every_task():
    math, code = PromptItem("m", "What is 1+2?", "3", "math"), linear_function_prompts()[0]

    def scored(verifier: str, right: bool) -> ScoredSample:
        result = VerifierResult.correct() if right else VerifierResult.incorrect()
        return ScoredSample("s", result.score, result.verdict, {verifier: result})

    groups = [Group(math, [], [scored("math", True), scored("math", False)]),
              Group(code, [], [scored("code", True), scored("code", True)])]
    metrics = reward_metrics(groups, 0, {"math": "math", "code": "code"})
    assert (metrics["accuracy/math"], metrics["accuracy/code"], metrics["accuracy_mean"]) == (0.5, 1.0, 0.75)


def test_routing_written_for_the_services_keeps_each_tasks_primary_first(tmp_path):
    from rewards.routing import RoutingConfig
    from trainer.reward_client import services_routing

    routing = RoutingConfig.from_dict({"tasks": load_config("configs/tiny-mix.yaml").rewards.routing})
    written = RoutingConfig.from_tasks(services_routing(routing))
    assert {task: route[0].verifier for task, route in written.tasks.items()} == {"math": "math", "code": "code"}
