"""Messages <-> dataclasses: exact round trips, and decoding errors that name the wire field."""

from __future__ import annotations

import pytest

from arbiter.v1 import common_pb2, sandbox_pb2, verifier_pb2
from rewards.compose import ScoredSample
from rewards.types import Sample, SampleError, Verdict, VerifierResult
from sandbox.api import Limits, RunResult, Status
from services import convert

FULL = Sample(id="7", task="code", completion="```py\nx=1\n```", prompt="p", answer="a",
              tests={"kind": "stdio", "cases": [{"stdin": "1", "stdout": "2"}], "big": 2**60},
              language="python", limits={"time_s": 2}, metadata={"group": 3, "nested": [1, {"a": None}]})


@pytest.mark.parametrize("sample", [FULL, Sample(id="1", task="math", completion="")], ids=["full", "minimal"])
def test_sample_round_trips_exactly(sample):
    assert convert.sample_from_proto(convert.sample_to_proto(sample)) == sample


def test_json_fields_keep_integers_exact():
    back = convert.sample_from_proto(convert.sample_to_proto(FULL))
    assert back.tests["big"] == 2**60 and isinstance(back.metadata["group"], int)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (verifier_pb2.Sample(task="math", completion="x"), "sample.id"),
        (verifier_pb2.Sample(id="1", completion="x"), "sample.task"),
        (verifier_pb2.Sample(id="1", task="t", tests_json="{"), "sample.tests_json"),
        (verifier_pb2.Sample(id="1", task="t", limits_json="[]"), "sample.limits_json"),
        (verifier_pb2.Sample(id="1", task="t", metadata_json='"text"'), "sample.metadata_json"),
    ],
    ids=["no-id", "no-task", "tests-not-json", "limits-not-object", "metadata-not-object"],
)
def test_malformed_sample_names_the_wire_field(message, field):
    with pytest.raises(SampleError) as info:
        convert.sample_from_proto(message)
    assert info.value.field == field


@pytest.mark.parametrize("verdict", list(Verdict))
def test_every_verdict_maps_both_ways(verdict):
    assert convert.verdict_from_proto(convert.verdict_to_proto(verdict)) is verdict


def test_unspecified_verdict_is_rejected():
    with pytest.raises(SampleError):
        convert.verdict_from_proto(common_pb2.VERDICT_UNSPECIFIED)


def test_scored_sample_round_trips_with_component_order():
    scored = ScoredSample("s", 1.5, Verdict.CORRECT,
                          {"math": VerifierResult.correct(answer="4"), "format": VerifierResult.graded(0.5)},
                          elapsed_ms=3.0, detail="")
    msg = convert.scored_to_proto(scored, cached=["math"])
    assert convert.cached_names(msg) == ["math"]
    back = convert.scored_from_proto(msg)
    assert back == scored
    assert list(back.components) == ["math", "format"]


def test_input_error_round_trips():
    scored = ScoredSample.input_error("s", SampleError("sample.answer", "missing"))
    back = convert.scored_from_proto(convert.scored_to_proto(scored))
    assert (back.error_field, back.detail, back.verdict, back.reward) == ("sample.answer", "missing",
                                                                          Verdict.ERROR, None)


def test_wire_field_names_map_both_ways():
    assert convert.field_to_wire("tests") == "sample.tests_json"
    assert convert.field_to_wire("answer") == "sample.answer"
    assert convert.field_from_wire("sample.tests_json") == "tests"
    assert convert.field_from_wire("verifier") == "verifier"


def test_limits_keep_defaults_for_absent_fields_and_name_a_bad_one():
    assert convert.limits_from_proto(sandbox_pb2.Limits(memory_mib=64)) == Limits(memory_mib=64)
    with pytest.raises(SampleError) as info:
        convert.limits_from_proto(sandbox_pb2.Limits(cpu_time_s=0))
    assert info.value.field == "limits.cpu_time_s"


def test_limits_network_travels_and_a_bad_one_is_named():
    assert convert.limits_from_proto(sandbox_pb2.Limits(network="none")) == Limits(network="none")
    assert convert.limits_to_proto(Limits()).network == "private_loopback"
    with pytest.raises(SampleError) as info:
        convert.limits_from_proto(sandbox_pb2.Limits(network="host"))
    assert info.value.field == "limits.network"


def test_run_result_round_trips():
    result = RunResult(Status.TIME_LIMIT, None, 9, "out", "err", 2.0, 1.0, None, "killed", b"\x00\x01")
    assert convert.run_result_from_proto(convert.run_result_to_proto(result)) == result


def test_grade_request_becomes_a_code_sample_with_one_fenced_block():
    sample = convert.grade_sample_from_proto(sandbox_pb2.GradeRequest(
        language="python", source="print(1)", tests_json='{"kind": "assert", "test": []}', time_s=2))
    assert sample.completion == "```python\nprint(1)\n```"
    assert sample.limits == {"time_s": 2.0}
    assert convert.grade_field_to_wire("tests.cases") == "tests_json.cases"
    assert convert.grade_field_to_wire("limits.time_s") == "time_s"


def test_service_error_survives_pickling_with_its_status():
    import pickle

    import grpc

    from services.core import ServiceError

    error = pickle.loads(pickle.dumps(ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "sample.id: missing")))
    assert (error.code, error.message) == (grpc.StatusCode.INVALID_ARGUMENT, "sample.id: missing")
    assert str(error) == "INVALID_ARGUMENT: sample.id: missing"


def test_audit_verdict_travels_on_the_reply_and_its_absence_too():
    audited = VerifierResult(Verdict.CORRECT, 1.0, "4 == gold 4", "4", audit=Verdict.INCORRECT)
    assert convert.result_from_proto(convert.result_to_proto(audited)) == audited
    plain = VerifierResult.correct(answer="4")
    assert convert.result_to_proto(plain).audit == common_pb2.VERDICT_UNSPECIFIED
    assert convert.result_from_proto(convert.result_to_proto(plain)).audit is None
def test_result_with_tests_and_provenance_round_trips():
    from sandbox.api import Provenance
    from sandbox.grading.result import Outcome, TestOutcome

    tests = (TestOutcome(0, Outcome.PASSED, time_s=0.01),
             TestOutcome.judged(1, Outcome.FAILED, "line 1 differs", time_s=0.02, input="5\n", expected="10\n",
                                actual="5\n", stderr="trace"))
    provenance = Provenance("docker", "docker containers", "python", "Python 3.11.2", Limits(network="none"),
                            image_id="sha256:abc")
    result = VerifierResult(Verdict.INCORRECT, 0.5, "1/2 tests passed", tests=tests, provenance=provenance)
    back = convert.result_from_proto(convert.result_to_proto(result))
    assert (back, back.tests, back.provenance) == (result, tests, provenance)
    plain = VerifierResult(Verdict.CORRECT, 1.0, "ok")
    assert convert.result_from_proto(convert.result_to_proto(plain)) == plain
