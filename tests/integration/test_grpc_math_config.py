"""The scoring config's `math` section configures the math verifier the scoring workers build:
a server set to audit every sample returns the audit's verdict on the reply."""

from __future__ import annotations

import grpc
import pytest
from grpc_harness import RunningServer

from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from services.config import ServerConfig, from_dict


@pytest.fixture(scope="module")
def audited_stub():
    raw = {"port": 0, "enable_sandbox_service": False,
           "scoring": {"worker_processes": 1, "verifiers": ["math"], "cache_entries": 0,
                       "math": {"audit_fraction": 1.0}}}
    server = RunningServer(from_dict(ServerConfig, raw))  # as `arbiter serve --standalone --config` reads YAML
    try:
        with grpc.insecure_channel(server.address) as channel:
            yield verifier_pb2_grpc.VerifierStub(channel)
    finally:
        server.stop()


def test_math_audit_fraction_from_the_scoring_config_audits_every_sample(audited_stub):
    requests = [verifier_pb2.ScoreRequest(verifiers=["math"], sample=verifier_pb2.Sample(
        id=id, task="math", completion=f"<think>w</think><answer>{answer}</answer>", answer=gold))
        for id, answer, gold in (("half", "0.5", "\\frac{1}{2}"), ("interval", "(0, 4]", "0 < y \\le 4"))]
    replies = audited_stub.ScoreBatch(verifier_pb2.ScoreBatchRequest(requests=requests), timeout=120).results
    assert [r.verdict for r in replies] == [common_pb2.VERDICT_CORRECT] * 2
    assert all(r.components[0].result.audit != common_pb2.VERDICT_UNSPECIFIED for r in replies)
