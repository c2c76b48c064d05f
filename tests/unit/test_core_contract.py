"""Verdicts, results, samples, routing, the registry and weighted composition."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from rewards import (
    DEFAULT_ROUTING,
    Registry,
    RegistryError,
    RoutingConfig,
    Sample,
    SampleError,
    Verdict,
    VerifierResult,
    compose,
    score_sample,
)


class ConstantVerifier:
    """A real (trivial) verifier used to exercise the registry and composition."""

    version = "1"
    reference = "none"

    def __init__(self, name: str, result: VerifierResult) -> None:
        self.name = name
        self.result = result

    def score(self, sample: Sample) -> VerifierResult:
        return self.result


class CrashingVerifier(ConstantVerifier):
    def score(self, sample: Sample) -> VerifierResult:
        raise RuntimeError("verifier bug")


def registry_with(*verifiers: ConstantVerifier) -> Registry:
    registry = Registry(include_plugins=False)
    for verifier in verifiers:
        registry.add(verifier.name, lambda v=verifier: v)
    return registry


def test_fault_verdicts_cannot_carry_a_score():
    with pytest.raises(ValueError):
        VerifierResult(Verdict.TIMEOUT, 0.0)
    with pytest.raises(ValueError):
        VerifierResult(Verdict.CORRECT, None)
    assert VerifierResult.timeout("slow").score is None
    assert VerifierResult.no_answer().score == 0.0


def test_results_and_samples_pickle():
    result = VerifierResult.correct(answer="3")
    assert pickle.loads(pickle.dumps(result)) == result
    sample = Sample(id="a", task="math", completion="x", metadata={"k": 1})
    assert pickle.loads(pickle.dumps(sample)) == sample


@pytest.mark.parametrize(
    ("raw", "bad_field"),
    [
        ({"task": "math", "completion": "x"}, "id"),
        ({"id": "a", "completion": "x"}, "task"),
        ({"id": "a", "task": "math"}, "completion"),
        ({"id": "a", "task": "math", "completion": 3}, "completion"),
        ({"id": "a", "task": "math", "completion": "x", "answer": True}, "answer"),
        ({"id": "a", "task": "math", "completion": "x", "answer": [3]}, "answer"),
        ({"id": "a", "task": "math", "completion": "x", "metadata": []}, "metadata"),
        ({"id": "a", "task": "math", "completion": "x", "colour": "red"}, "colour"),
        ([1, 2], "<line>"),
    ],
)
def test_malformed_sample_names_the_field(raw, bad_field):
    with pytest.raises(SampleError) as info:
        Sample.from_dict(raw)
    assert info.value.field == bad_field


def test_integer_ids_are_accepted_as_strings():
    assert Sample.from_dict({"id": 7, "task": "math", "completion": ""}).id == "7"


def test_duplicate_verifier_name_is_an_error():
    registry = registry_with(ConstantVerifier("alpha", VerifierResult.correct()))
    with pytest.raises(RegistryError, match="duplicate"):
        registry.add("alpha", lambda: ConstantVerifier("alpha", VerifierResult.correct()))


def test_builtin_names_cannot_be_shadowed():
    registry = Registry(include_plugins=False)
    with pytest.raises(RegistryError, match="duplicate"):
        registry.add("math", lambda: ConstantVerifier("math", VerifierResult.correct()))


def test_a_builtin_can_be_configured_before_first_use_only():
    registry = Registry(include_plugins=False)
    registry.configure("format", lambda: ConstantVerifier("format", VerifierResult.incorrect()))
    assert registry.get("format").score(Sample(id="1", task="t", completion="")).verdict is Verdict.INCORRECT
    with pytest.raises(RegistryError, match="already built"):
        registry.configure("format", lambda: ConstantVerifier("format", VerifierResult.correct()))
    with pytest.raises(RegistryError, match="unknown"):
        registry.configure("nope", lambda: ConstantVerifier("nope", VerifierResult.correct()))


def test_verifier_whose_name_disagrees_with_its_registration_is_rejected():
    registry = Registry(include_plugins=False)
    registry.add("alpha", lambda: ConstantVerifier("beta", VerifierResult.correct()))
    with pytest.raises(RegistryError, match="calls itself"):
        registry.get("alpha")


def test_unknown_verifier_lists_the_known_ones():
    with pytest.raises(RegistryError, match=r"known: .*format"):
        Registry(include_plugins=False).get("nope")


def test_faulted_component_makes_reward_none_not_zero():
    reward, verdict, detail = compose(
        [("acc", 1.0, VerifierResult.timeout("deadline 5s")), ("fmt", 1.0, VerifierResult.correct())]
    )
    assert reward is None
    assert verdict is Verdict.TIMEOUT
    assert "acc" in detail


def test_error_outranks_timeout_among_faults():
    _, verdict, _ = compose(
        [("a", 1.0, VerifierResult.timeout("t")), ("b", 1.0, VerifierResult.error("boom"))]
    )
    assert verdict is Verdict.ERROR


def test_not_applicable_primary_makes_the_sample_not_applicable():
    reward, verdict, detail = compose(
        [("acc", 1.0, VerifierResult.not_applicable("bad gold")), ("fmt", 0.5, VerifierResult.correct())]
    )
    assert (reward, verdict) == (None, Verdict.NOT_APPLICABLE)
    assert "bad gold" in detail


def test_not_applicable_secondary_components_are_left_out_of_the_sum():
    reward, verdict, _ = compose(
        [("acc", 1.0, VerifierResult.correct()), ("lang", 0.5, VerifierResult.not_applicable("no cot"))]
    )
    assert (reward, verdict) == (1.0, Verdict.CORRECT)


def test_weighted_sum_with_primary_verdict():
    reward, verdict, _ = compose(
        [("acc", 1.0, VerifierResult.incorrect()), ("fmt", 0.5, VerifierResult.correct())]
    )
    assert reward == 0.5
    assert verdict is Verdict.INCORRECT


def test_all_not_applicable_is_not_applicable():
    reward, verdict, _ = compose([("acc", 1.0, VerifierResult.not_applicable("x"))])
    assert (reward, verdict) == (None, Verdict.NOT_APPLICABLE)


def test_crashing_verifier_is_reported_as_error_component():
    registry = registry_with(
        CrashingVerifier("acc", VerifierResult.correct()), ConstantVerifier("fmt", VerifierResult.correct())
    )
    routing = RoutingConfig.from_dict({"tasks": {"t": {"acc": 1.0, "fmt": 1.0}}})
    scored = score_sample(Sample(id="1", task="t", completion=""), routing, registry)
    assert scored.reward is None
    assert scored.verdict is Verdict.ERROR
    assert "verifier bug" in scored.components["acc"].detail
    assert scored.components["fmt"].verdict is Verdict.CORRECT


def test_unknown_task_is_an_input_error_naming_task():
    scored = score_sample(Sample(id="1", task="poetry", completion=""), DEFAULT_ROUTING, registry_with())
    assert scored.is_input_error
    assert scored.to_record()["error"]["field"] == "task"


def test_only_reports_that_verifiers_own_reward_and_verdict():
    registry = registry_with(
        ConstantVerifier("acc", VerifierResult.incorrect()), ConstantVerifier("fmt", VerifierResult.correct())
    )
    routing = RoutingConfig.from_dict({"tasks": {"t": {"acc": 1.0, "fmt": 1.0}}})
    scored = score_sample(Sample(id="1", task="t", completion=""), routing, registry, only="fmt")
    assert (scored.reward, scored.verdict) == (1.0, Verdict.CORRECT)
    assert list(scored.components) == ["fmt"]


def test_record_has_lowercase_verdicts_and_components():
    registry = registry_with(ConstantVerifier("acc", VerifierResult.correct(detail="ok")))
    routing = RoutingConfig.from_dict({"tasks": {"t": {"acc": 2.0}}})
    record = score_sample(Sample(id="1", task="t", completion=""), routing, registry).to_record()
    assert record["verdict"] == "correct"
    assert record["reward"] == 2.0
    assert record["components"] == {"acc": {"score": 1.0, "verdict": "correct", "detail": "ok"}}
    assert set(record) >= {"id", "reward", "verdict", "components", "elapsed_ms"}


def test_record_keeps_each_components_tests_provenance_and_audit():
    from sandbox.api import Limits, Provenance
    from sandbox.grading.result import Outcome, TestOutcome

    source = Provenance("bwrap-pool", "warm pool", "python", "Python 3.11.2", Limits())
    tests = (TestOutcome.judged(0, Outcome.FAILED, "line 1 differs", input="1\n", expected="2\n", actual="3\n"),)
    result = replace(VerifierResult.incorrect(detail="0/1"), tests=tests, provenance=source, audit=Verdict.CORRECT)
    registry = registry_with(ConstantVerifier("acc", result))
    routing = RoutingConfig.from_dict({"tasks": {"t": {"acc": 1.0}}})
    record = score_sample(Sample(id="1", task="t", completion=""), routing, registry).to_record()
    component = record["components"]["acc"]
    assert component["tests"] == [tests[0].to_record()] and component["tests"][0]["expected"] == "2\n"
    assert component["provenance"] == source.to_record()
    assert component["audit"] == "correct"


@pytest.mark.parametrize(
    "raw",
    [
        {"tasks": {}},
        {"tasks": {"math": {"math": "heavy"}}},
        {"tasks": {"math": {"math": 1.0}}, "extra": 1},
        {"tasks": {"math": []}},
    ],
)
def test_malformed_routing_config_is_rejected(raw):
    with pytest.raises(ValueError):
        RoutingConfig.from_dict(raw)


def test_routing_config_round_trips_through_yaml(tmp_path):
    path = tmp_path / "routing.yaml"
    import yaml

    path.write_text(yaml.safe_dump(DEFAULT_ROUTING.to_dict(), sort_keys=False))  # order = primary first
    assert RoutingConfig.load(path) == DEFAULT_ROUTING
    assert DEFAULT_ROUTING.route("math")[0].verifier == "math"
