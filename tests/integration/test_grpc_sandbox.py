"""The Sandbox service on its own: Execute through the real sandbox, Grade through the code verifier."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc_harness import RunningServer, scoring

from arbiter.v1 import common_pb2, sandbox_pb2, sandbox_pb2_grpc
from services.config import ServerConfig

TESTS = json.dumps({"kind": "assert", "test": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]})


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    running = RunningServer(ServerConfig(port=0, scoring=scoring(tmp_path_factory.mktemp("sbx"), worker_processes=1,
                                                                 verifiers=("code",))))
    with grpc.insecure_channel(running.address) as channel:
        yield sandbox_pb2_grpc.SandboxStub(channel)
    running.stop()


def test_execute_runs_the_program_in_the_sandbox(stub):
    reply = stub.Execute(sandbox_pb2.ExecuteRequest(language="python", source="print(input()[::-1])", stdin="abc"),
                         timeout=60)
    assert reply.status == sandbox_pb2.RUN_STATUS_OK
    assert reply.stdout == "cba\n"


def test_execute_reports_a_time_limit_as_a_status(stub):
    request = sandbox_pb2.ExecuteRequest(language="python", source="while True: pass",
                                         limits=sandbox_pb2.Limits(cpu_time_s=0.5, wall_time_s=2))
    assert stub.Execute(request, timeout=60).status == sandbox_pb2.RUN_STATUS_TIME_LIMIT


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (sandbox_pb2.ExecuteRequest(language="python", source="pass", limits=sandbox_pb2.Limits(memory_mib=1 << 20)),
         "limits.memory_mib:"),
        (sandbox_pb2.ExecuteRequest(source="pass"), "language:"),
        (sandbox_pb2.ExecuteRequest(language="python", source="pass", limits=sandbox_pb2.Limits(wall_time_s=-1)),
         "limits.wall_time_s:"),
    ],
    ids=["over-cap", "no-language", "negative-limit"],
)
def test_bad_execute_request_is_invalid_argument_naming_the_field(stub, request_, field):
    with pytest.raises(grpc.RpcError) as info:
        stub.Execute(request_, timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(field)


def test_grade_scores_a_program_like_the_code_verifier(stub):
    right = stub.Grade(sandbox_pb2.GradeRequest(language="python", source="def add(a, b):\n    return a + b",
                                                tests_json=TESTS), timeout=60)
    assert right.verdict == common_pb2.VERDICT_CORRECT
    assert right.score == 1.0
    half = stub.Grade(sandbox_pb2.GradeRequest(language="python", source="def add(a, b):\n    return 3",
                                               tests_json=TESTS), timeout=60)
    assert half.verdict == common_pb2.VERDICT_INCORRECT
    assert half.score == 0.5
    assert "1/2 tests passed" in half.detail


def test_grade_reply_carries_each_tests_outcome_and_the_provenance(stub):
    half = stub.Grade(sandbox_pb2.GradeRequest(language="python", source="def add(a, b):\n    return 3",
                                               tests_json=TESTS), timeout=60)
    passed, failed = half.tests
    assert passed.status == sandbox_pb2.TEST_STATUS_PASSED and passed.HasField("time_s") and not passed.input
    assert failed.status == sandbox_pb2.TEST_STATUS_FAILED
    assert (failed.input, failed.expected, failed.actual) == ("assert add(-1, 1) == 0", "0", "3")
    assert half.provenance.language == "python" and half.provenance.toolchain.startswith("Python 3")
    assert half.provenance.backend == "bwrap-pool" and half.provenance.limits.memory_mib > 0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (sandbox_pb2.GradeRequest(language="python", source="x = 1", tests_json='{"kind": 0}'), "tests_json.kind:"),
        (sandbox_pb2.GradeRequest(language="python", source="x = 1", tests_json=TESTS, time_s=999), "time_s:"),
        (sandbox_pb2.GradeRequest(language="python", source="s = '''\n```\n'''", tests_json=TESTS), "source:"),
    ],
    ids=["bad-tests", "time-over-range", "fence-in-source"],
)
def test_bad_grade_request_is_invalid_argument_naming_the_field(stub, request_, field):
    with pytest.raises(grpc.RpcError) as info:
        stub.Grade(request_, timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(field)
