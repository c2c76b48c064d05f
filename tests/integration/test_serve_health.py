"""services.health: grpc.health.v1 over a real socket, following real ListVerifiers probes."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arbiter.v1 import verifier_pb2_grpc
from services.health import NOT_SERVING, SERVING, HealthReporter
from services.serve_cli import app_probe
from tests.conftest import free_port


async def _status(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                timeout=5)
        return reply.status


def test_health_is_serving_only_while_every_app_answers_and_not_serving_once_drained(external_verifier):
    async def go():
        up = grpc.aio.insecure_channel(external_verifier)
        down = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")  # nothing listens there
        alive = app_probe(verifier_pb2_grpc.VerifierStub(up), "alive", None, 2.0)
        dead = app_probe(verifier_pb2_grpc.VerifierStub(down), "dead", None, 2.0)
        seen = {}

        one_down = HealthReporter({"alive": alive, "dead": dead}, interval_s=3600, timeout_s=2.0)
        port = await one_down.start("127.0.0.1", 0)
        seen["before_first_probe"] = await _status(port, "")
        await one_down.probe_once()
        seen["one_down"] = [await _status(port, s) for s in ("", "arbiter.v1.Verifier", "alive", "dead")]
        await one_down.stop()

        all_up = HealthReporter({"alive": alive}, interval_s=3600, timeout_s=2.0)
        port = await all_up.start("127.0.0.1", 0)
        await all_up.probe_once()
        seen["all_up"] = [await _status(port, s) for s in ("", "arbiter.v1.Verifier", "alive")]
        await all_up.drain()
        await all_up.probe_once()  # a probe after draining must not bring it back
        seen["drained"] = [await _status(port, s) for s in ("", "alive")]
        await all_up.stop()
        await up.close()
        await down.close()
        return seen

    seen = asyncio.run(go())
    assert seen["before_first_probe"] == NOT_SERVING
    assert seen["one_down"] == [NOT_SERVING, NOT_SERVING, SERVING, NOT_SERVING]
    assert seen["all_up"] == [SERVING, SERVING, SERVING]
    assert seen["drained"] == [NOT_SERVING, NOT_SERVING]
