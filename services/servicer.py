"""The grpc.aio adapters of the core (services.core): a status on the context for a ServiceError,
nothing else. The standalone server (services.server) registers them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc

from arbiter.v1 import sandbox_pb2_grpc, verifier_pb2_grpc
from services.core import ServiceError, VerifierCore


async def _unary(call: Awaitable[Any], context: grpc.aio.ServicerContext) -> Any:
    try:
        return await call
    except ServiceError as exc:
        await context.abort(exc.code, exc.message)


class VerifierServicer(verifier_pb2_grpc.VerifierServicer):
    def __init__(self, core: VerifierCore) -> None:
        self.core = core

    async def Score(self, request, context):
        return await _unary(self.core.score(request), context)

    async def ScoreBatch(self, request, context):
        return await _unary(self.core.score_batch(request), context)

    async def ScoreStream(self, request_iterator: AsyncIterator[Any], context) -> AsyncIterator[Any]:
        try:
            async for result in self.core.score_stream(request_iterator):
                yield result
        except ServiceError as exc:
            await context.abort(exc.code, exc.message)

    async def ListVerifiers(self, request, context):
        return await _unary(_now_or_raise(self.core.list_verifiers, request), context)

    async def Describe(self, request, context):
        return await _unary(_now_or_raise(self.core.describe, request), context)


async def _now_or_raise(method: Any, request: Any) -> Any:
    return method(request)


class SandboxServicer(sandbox_pb2_grpc.SandboxServicer):
    def __init__(self, core: VerifierCore) -> None:
        self.core = core

    async def Execute(self, request, context):
        return await _unary(self.core.execute(request), context)

    async def Grade(self, request, context):
        return await _unary(self.core.grade(request), context)
