"""The verifier apps on a real local Ray cluster, called through Serve's gRPC proxy over real sockets."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from grpc_harness import interactive_stream

from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from rewards.types import Sample
from services import convert

pytestmark = pytest.mark.slow

CALL_TIMEOUT_S = 60.0


def math_sample(sample_id: str, answer: str = "5", boxed: str = "5") -> verifier_pb2.Sample:
    completion = f"<think>\nadding\n</think>\n<answer>\n\\boxed{{{boxed}}}\n</answer>"
    return convert.sample_to_proto(Sample(id=sample_id, task="math", completion=completion, answer=answer))


def call(serve_apps, app: str, method: str, request, **kwargs):
    async def go():
        async with grpc.aio.insecure_channel(serve_apps.grpc) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            return await getattr(stub, method)(request, metadata=[("application", app)], timeout=CALL_TIMEOUT_S,
                                               **kwargs)

    return asyncio.run(go())


def stream(serve_apps, app: str, requests: list) -> list:
    async def go():
        async with grpc.aio.insecure_channel(serve_apps.grpc) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)

            async def source():
                for request in requests:
                    yield request

            return [r async for r in stub.ScoreStream(source(), metadata=[("application", app)],
                                                      timeout=CALL_TIMEOUT_S)]

    return asyncio.run(go())


def rpc_error(fn, *args) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        fn(*args)
    return info.value


@pytest.mark.parametrize("app", ["math", "router"])
def test_score_through_serve_proxy_composes_math_and_format(serve_apps, app):
    result = call(serve_apps, app, "Score", verifier_pb2.ScoreRequest(sample=math_sample("s1")))
    assert result.id == "s1"
    assert result.verdict == common_pb2.VERDICT_CORRECT
    assert [c.verifier for c in result.components] == ["math", "format"]
    assert result.reward == pytest.approx(2.0)


def test_router_splits_a_request_whose_verifiers_different_apps_serve_and_merges_the_answers(serve_apps):
    named = verifier_pb2.ScoreRequest(sample=math_sample("split"), verifiers=["repetition", "math"])  # rules, math
    result = call(serve_apps, "router", "Score", named)
    assert result.id == "split"
    assert [c.verifier for c in result.components] == ["repetition", "math"]
    math_score = result.components[1].result.score
    assert not result.HasField("reward")  # the caller named the verifiers: it composes
    assert math_score == 1.0


@pytest.mark.parametrize("app", ["math", "router"])
def test_score_batch_answers_each_item_in_order(serve_apps, app):
    requests = [verifier_pb2.ScoreRequest(sample=math_sample(f"b{i}", answer=str(i), boxed="3")) for i in range(6)]
    response = call(serve_apps, app, "ScoreBatch", verifier_pb2.ScoreBatchRequest(requests=requests))
    assert [r.id for r in response.results] == [f"b{i}" for i in range(6)]
    verdicts = [r.components[0].result.verdict for r in response.results]
    assert verdicts == [common_pb2.VERDICT_CORRECT if i == 3 else common_pb2.VERDICT_INCORRECT for i in range(6)]


@pytest.mark.parametrize("app", ["rules", "router"])
def test_score_stream_returns_one_result_per_sample(serve_apps, app):
    requests = [
        verifier_pb2.ScoreRequest(sample=math_sample(f"st{i}"), verifiers=["format"]) for i in range(20)
    ]
    results = stream(serve_apps, app, requests)
    assert sorted(r.id for r in results) == sorted(f"st{i}" for i in range(20))
    assert all(r.verdict == common_pb2.VERDICT_CORRECT for r in results)


def test_list_verifiers_on_a_family_app_lists_its_family_and_routed_secondaries(serve_apps):
    response = call(serve_apps, "math", "ListVerifiers", verifier_pb2.ListVerifiersRequest())
    assert [v.name for v in response.verifiers] == ["format", "math"]


def test_router_lists_every_verifier_once_with_external_address(serve_apps):
    response = call(serve_apps, "router", "ListVerifiers", verifier_pb2.ListVerifiersRequest())
    names = [v.name for v in response.verifiers]
    assert names == sorted(set(names))
    assert {"math", "format", "repetition", "sleepy", "json_match"} <= set(names)
    external = next(v for v in response.verifiers if v.name == "json_match")
    assert external.address == serve_apps.external_address
    assert {t.task for t in response.tasks} >= {"math", "format"}


def test_describe_through_router_reaches_the_owning_app(serve_apps):
    response = call(serve_apps, "router", "Describe", verifier_pb2.DescribeRequest(name="math"))
    assert response.verifier.name == "math"
    assert response.verifier.reference == verifier_pb2.REFERENCE_ANSWER


def test_entry_point_plugin_is_served_by_its_own_app(serve_apps):
    request = verifier_pb2.ScoreRequest(sample=math_sample("p1"), verifiers=["sleepy"])
    for app in ("sleepy", "router"):
        result = call(serve_apps, app, "Score", request)
        assert result.verdict == common_pb2.VERDICT_CORRECT
        assert result.components[0].verifier == "sleepy"


def test_external_verifier_registered_by_address_is_reached_through_router(serve_apps):
    completion = '<think>x</think><answer>{"a": [1, 2]}</answer>'
    good = Sample(id="e1", task="json", completion=completion, answer='{"a": [1, 2]}')
    bad = Sample(id="e2", task="json", completion=completion, answer='{"a": [2, 1]}')
    requests = [
        verifier_pb2.ScoreRequest(sample=convert.sample_to_proto(s), verifiers=["json_match"]) for s in (good, bad)
    ]
    response = call(serve_apps, "router", "ScoreBatch", verifier_pb2.ScoreBatchRequest(requests=requests))
    assert [r.verdict for r in response.results] == [common_pb2.VERDICT_CORRECT, common_pb2.VERDICT_INCORRECT]


def test_external_verifier_that_does_not_answer_is_rejected_at_start_up(serve_apps):
    from rewards.registry import RegistryError
    from services import cluster_config
    from services.serve_cli import check_externals
    from tests.conftest import free_port

    config = cluster_config.parse({"external": {"ghost": {"address": f"127.0.0.1:{free_port()}", "timeout_s": 2}}})
    with pytest.raises(RegistryError, match="ghost"):
        check_externals(config)


@pytest.mark.parametrize("app", ["math", "router"])
def test_unknown_verifier_is_invalid_argument(serve_apps, app):
    request = verifier_pb2.ScoreRequest(sample=math_sample("u1"), verifiers=["no_such_verifier"])
    error = rpc_error(call, serve_apps, app, "Score", request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "verifier" in error.details()


@pytest.mark.parametrize("app", ["math", "router"])
def test_malformed_sample_is_invalid_argument_naming_the_field(serve_apps, app):
    broken = math_sample("m1")
    broken.tests_json = "{not json"
    error = rpc_error(call, serve_apps, app, "Score", verifier_pb2.ScoreRequest(sample=broken))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("sample.tests_json")
    missing = rpc_error(call, serve_apps, app, "Score", verifier_pb2.ScoreRequest())
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("app", ["math", "router"])
def test_one_malformed_item_does_not_fail_the_batch(serve_apps, app):
    unknown_task = verifier_pb2.Sample(id="bad", task="no_such_task", completion="x")
    requests = [verifier_pb2.ScoreRequest(sample=math_sample("ok1")), verifier_pb2.ScoreRequest(sample=unknown_task),
                verifier_pb2.ScoreRequest(sample=math_sample("ok2"))]
    response = call(serve_apps, app, "ScoreBatch", verifier_pb2.ScoreBatchRequest(requests=requests))
    assert [r.id for r in response.results] == ["ok1", "bad", "ok2"]
    assert response.results[1].error.field == "sample.task"
    assert response.results[0].verdict == response.results[2].verdict == common_pb2.VERDICT_CORRECT


@pytest.mark.parametrize("app", ["sleepy", "router"])
def test_duplicate_id_in_flight_on_a_stream_gets_its_own_error_and_the_stream_goes_on(serve_apps, app):
    request = verifier_pb2.ScoreRequest(sample=math_sample("dup"), verifiers=["sleepy"])
    request.sample.metadata_json = json.dumps({"sleep_s": 1.0})  # still in flight when the twin arrives
    after = verifier_pb2.ScoreRequest(sample=math_sample("after"), verifiers=["sleepy"])
    results = stream(serve_apps, app, [request, request, after])
    errors = [r for r in results if r.HasField("error")]
    assert [(r.id, r.error.field) for r in errors] == [("dup", "sample.id")]
    assert sorted(r.id for r in results if not r.HasField("error")) == ["after", "dup"]


@pytest.mark.parametrize("app", ["math", "router"])
def test_stream_results_come_back_before_the_client_half_closes_and_a_bad_item_gets_its_own_error(serve_apps, app):
    requests = [verifier_pb2.ScoreRequest(sample=math_sample("first")), verifier_pb2.ScoreRequest(),
                verifier_pb2.ScoreRequest(sample=math_sample("last", answer="6"))]
    results = asyncio.run(interactive_stream(serve_apps.grpc, requests, (("application", app),), CALL_TIMEOUT_S))
    assert [r.id for r in results] == ["first", "", "last"]
    assert [results[0].verdict, results[2].verdict] == [common_pb2.VERDICT_CORRECT, common_pb2.VERDICT_INCORRECT]
    assert results[1].error.field == "sample.id"


def test_undecodable_bytes_get_an_error_status_and_the_proxy_keeps_serving(serve_apps):
    async def go():
        async with grpc.aio.insecure_channel(serve_apps.grpc) as channel:
            raw = channel.unary_unary("/arbiter.v1.Verifier/Score")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await raw(b"\xff\xff\xff", metadata=[("application", "math")], timeout=CALL_TIMEOUT_S)
            return info.value.code()

    assert asyncio.run(go()) != grpc.StatusCode.OK
    result = call(serve_apps, "math", "Score", verifier_pb2.ScoreRequest(sample=math_sample("after")))
    assert result.verdict == common_pb2.VERDICT_CORRECT


def test_call_without_application_metadata_is_not_found(serve_apps):
    async def go():
        async with grpc.aio.insecure_channel(serve_apps.grpc) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            await stub.ListVerifiers(verifier_pb2.ListVerifiersRequest(), timeout=CALL_TIMEOUT_S)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        asyncio.run(go())
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
