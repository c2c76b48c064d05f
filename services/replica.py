"""The Ray Serve adapter of the core (services.core): a Serve replica is the core over its own
worker processes, and each RPC here only translates between Serve and the core.

Serve's gRPC proxy passes a context (Serve's own, with set_code/set_details) to the ingress
deployment; calls between replicas (DeploymentHandle) carry none and get ServiceError raised
instead, which pickles across. Serve's proxy takes no interceptors, so the bearer-token check
of services.auth runs here, at the edge, and so does the drain of `arbiter serve` (services.drain):
UNAVAILABLE for client calls once it drains. The replica records its metrics through
ray.util.metrics (services.ray_metrics), which the node's metrics agent exports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from ray import serve

from arbiter.v1 import sandbox_pb2, verifier_pb2
from services.auth import REFUSAL, bearer_ok, token_from_env
from services.config import ScoringConfig
from services.core import ServiceError, VerifierCore
from services.drain import DrainWatch
from services.ray_metrics import RayMetrics

VERIFIER_DEPLOYMENT = "Verifier"


class Edge:
    """What every Serve ingress does around a call: the token check, UNAVAILABLE while draining,
    the count of calls in flight (the drain waits for them), and a status for a ServiceError."""

    def __init__(self, token_env: str | None, drain: DrainWatch) -> None:
        self._token = token_from_env(token_env, "token_env", " in the replica")
        self.drain = drain

    def refusal(self, context: Any) -> ServiceError | None:
        # A call between replicas (DeploymentHandle) carries no context: it was checked at the edge.
        if self._token is not None and context is not None and not bearer_ok(context.invocation_metadata(),
                                                                             self._token):
            return ServiceError(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)
        draining = self.drain.refusal(context)
        return None if draining is None else ServiceError(grpc.StatusCode.UNAVAILABLE, draining)

    async def unary(self, call: Callable[[], Awaitable[Any]], context: Any, empty: Any) -> Any:
        """Run one unary call. A failure through the proxy is the status set on the context with an
        empty reply (an expected client error then logs no traceback); between replicas it is raised."""
        try:
            refused = self.refusal(context)
            if refused is not None:
                raise refused
            with self.drain.counted():
                return await call()
        except ServiceError as exc:
            if context is None:
                raise
            fail(context, exc)
            return empty

    async def stream(self, results: Callable[[], AsyncIterator[Any]], context: Any) -> AsyncIterator[Any]:
        """Run one streaming call; a failure sets the status and ends the stream (streams must raise)."""
        try:
            refused = self.refusal(context)
            if refused is not None:
                raise refused
            with self.drain.counted():
                async for result in results():
                    yield result
        except ServiceError as exc:
            fail(context, exc)
            raise


def fail(context: Any, error: ServiceError) -> None:
    if context is not None:
        context.set_code(error.code)
        context.set_details(error.message)


def sync(method: Callable[[Any], Any], request: Any) -> Callable[[], Awaitable[Any]]:
    """A synchronous core method as an awaitable call (it only reads in-memory state)."""

    async def call() -> Any:
        return method(request)

    return call


@serve.deployment(name=VERIFIER_DEPLOYMENT)
class VerifierReplica:
    """One replica of a family or plug-in app: the core over its own pool of worker processes,
    serving arbiter.v1.Verifier and arbiter.v1.Sandbox."""

    async def __init__(self, scoring: ScoringConfig, token_env: str | None) -> None:
        self._core = VerifierCore(scoring, RayMetrics())
        self._edge = Edge(token_env, DrainWatch(close=self._core.close))
        await self._core.start()

    async def Score(self, request: verifier_pb2.ScoreRequest, grpc_context: Any = None) -> Any:
        return await self._edge.unary(lambda: self._core.score(request), grpc_context, verifier_pb2.ScoreResult())

    async def ScoreBatch(self, request: verifier_pb2.ScoreBatchRequest, grpc_context: Any = None) -> Any:
        return await self._edge.unary(lambda: self._core.score_batch(request), grpc_context,
                                      verifier_pb2.ScoreBatchResponse())

    async def ScoreStream(self, request_stream: AsyncIterator[Any], grpc_context: Any = None) -> AsyncIterator[Any]:
        async for result in self._edge.stream(lambda: self._core.score_stream(request_stream), grpc_context):
            yield result

    async def ListVerifiers(self, request: verifier_pb2.ListVerifiersRequest, grpc_context: Any = None) -> Any:
        return await self._edge.unary(sync(self._core.list_verifiers, request), grpc_context,
                                      verifier_pb2.ListVerifiersResponse())

    async def Describe(self, request: verifier_pb2.DescribeRequest, grpc_context: Any = None) -> Any:
        return await self._edge.unary(sync(self._core.describe, request), grpc_context,
                                      verifier_pb2.DescribeResponse())

    async def Execute(self, request: sandbox_pb2.ExecuteRequest, grpc_context: Any = None) -> Any:
        return await self._edge.unary(lambda: self._core.execute(request), grpc_context, sandbox_pb2.ExecuteResponse())

    async def Grade(self, request: sandbox_pb2.GradeRequest, grpc_context: Any = None) -> Any:
        return await self._edge.unary(lambda: self._core.grade(request), grpc_context, sandbox_pb2.GradeResponse())

    def check_health(self) -> None:
        if not self._core.ready:
            raise RuntimeError("core is not ready (warming up or draining)")

    async def __del__(self) -> None:
        # Serve calls this after in-flight requests finished (graceful_shutdown_timeout_s).
        await self._core.close()
