"""Overload, deadlines and a replica dying mid-stream, on the shared Serve apps (see conftest.py).

The `sleepy` plug-in app has 2 replicas, max_ongoing_requests=2 and max_queued_requests=2,
and its verifier sleeps metadata["sleep_s"], so these tests control how long work takes.
"""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from rewards.types import Sample, Verdict

pytestmark = pytest.mark.slow


def sleepy_request(sample_id: str, sleep_s: float) -> verifier_pb2.ScoreRequest:
    metadata = json.dumps({"sleep_s": sleep_s})
    sample = verifier_pb2.Sample(id=sample_id, task="sleepy", completion="done", metadata_json=metadata)
    return verifier_pb2.ScoreRequest(sample=sample, verifiers=["sleepy"])


async def _score_all(address: str, requests: list, timeout_s: float) -> list:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        calls = [stub.Score(r, metadata=[("application", "sleepy")], timeout=timeout_s) for r in requests]
        return await asyncio.gather(*calls, return_exceptions=True)


def test_overload_beyond_max_queued_requests_answers_resource_exhausted(serve_apps):
    # 2 replicas x 2 ongoing + 2 queued = 6 accepted at once; the rest must be refused, not queued.
    outcomes = asyncio.run(_score_all(serve_apps.grpc, [sleepy_request(f"o{i}", 1.5) for i in range(12)], 60))
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    answered = [o for o in outcomes if isinstance(o, verifier_pb2.ScoreResult)]
    assert refused and all(o.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for o in refused)
    assert answered and all(o.verdict == common_pb2.VERDICT_CORRECT for o in answered)
    assert len(refused) + len(answered) == 12


def test_call_past_its_deadline_gets_deadline_exceeded_and_the_app_keeps_serving(serve_apps):
    (late,) = asyncio.run(_score_all(serve_apps.grpc, [sleepy_request("late", 3.0)], timeout_s=0.5))
    assert isinstance(late, grpc.aio.AioRpcError)
    assert late.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    (after,) = asyncio.run(_score_all(serve_apps.grpc, [sleepy_request("after", 0.0)], timeout_s=60))
    assert isinstance(after, verifier_pb2.ScoreResult) and after.verdict == common_pb2.VERDICT_CORRECT


def _kill_one_replica(app: str, deployment: str = "Verifier") -> str:
    """ray.kill one live replica actor of `app` (Serve names them SERVE_REPLICA::APP#DEPLOYMENT#ID)."""
    import ray

    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)]
    assert len(names) >= 2, f"the test needs two live replicas of {app}, found {names}"
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
    return names[0]


def test_replica_killed_mid_stream_still_gives_every_sample_exactly_one_result(serve_apps):
    from services.client import VerifierClient
    from services.config import ClientConfig

    samples = [
        Sample(id=f"k{i:03d}", task="sleepy", completion="done", metadata={"sleep_s": 0.05}) for i in range(80)
    ]
    config = ClientConfig(endpoint=serve_apps.grpc, application="router", max_batch=4, max_wait_ms=1.0,
                          max_concurrency=2, deadline_s=30, retries=6, backoff_initial_s=0.2, backoff_max_s=2.0)
    routing = _sleepy_routing()

    async def go():
        results = []
        async with VerifierClient(config, routing) as client:

            async def source():
                for sample in samples:
                    yield sample

            async for scored in client.score_stream(source()):
                results.append(scored)
                if len(results) == 8:  # the stream is under way: kill a replica serving it
                    await asyncio.to_thread(_kill_one_replica, "sleepy")
        return results

    results = asyncio.run(go())
    ids = [r.id for r in results]
    assert sorted(ids) == [s.id for s in samples]  # every sample, exactly once
    faults = [r.detail for r in results if r.verdict is not Verdict.CORRECT]
    assert not faults, faults


def _sleepy_routing():
    from rewards.routing import RoutingConfig

    return RoutingConfig.from_dict({"tasks": {"sleepy": {"sleepy": 1.0}}})
