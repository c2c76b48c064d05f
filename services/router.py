"""The router app's deployment: one front door for every verifier and task of a cluster.

It scores nothing itself. A request naming `verifiers` is split between the apps (or
external servers) serving them and their components merged, in the requested order;
the caller composes. A request naming none goes whole to the app serving its task's
primary verifier, which routes and composes it (a family app also serves the cheap
secondaries its tasks route to). Single samples from Score and ScoreStream are gathered
into batches with serve.batch, so the cost of a call between replicas is paid once per
batch, not once per sample.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from arbiter.v1 import sandbox_pb2, verifier_pb2, verifier_pb2_grpc
from rewards.compose import ScoredSample, verdict_of
from rewards.types import SampleError
from services import convert
from services.cluster_config import RouterAppArgs
from services.core import ServiceError
from services.drain import DrainWatch
from services.replica import VERIFIER_DEPLOYMENT, Edge
from services.streams import keyed_results

ROUTER_DEPLOYMENT = "Router"
STREAM_WINDOW = 256  # unanswered samples per ScoreStream at the router


@serve.deployment(name=ROUTER_DEPLOYMENT)
class Router:
    async def __init__(self, args: RouterAppArgs) -> None:
        self._edge = Edge(args.token_env, DrainWatch())
        self._routing = args.routes
        self._targets = dict(args.targets)
        self._handles = {
            app: serve.get_deployment_handle(VERIFIER_DEPLOYMENT, app)
            for app in set(self._targets.values())
            if not app.startswith("external:")
        }
        self._external = {
            f"external:{name}": (verifier_pb2_grpc.VerifierStub(grpc.aio.insecure_channel(cfg.address)), cfg)
            for name, cfg in args.external.items()
        }

    # --- where a sample goes ----------------------------------------------------------------

    def _owner(self, verifier: str, field_name: str) -> str:
        if verifier not in self._targets:
            known = ", ".join(sorted(self._targets))
            raise SampleError(field_name, f"unknown verifier {verifier!r}; served: {known}")
        return self._targets[verifier]

    def _parts(self, request: verifier_pb2.ScoreRequest) -> list[tuple[str, list[str], verifier_pb2.ScoreRequest]]:
        """(target, verifiers it scores, request) for each app a request goes to: one, unless it names
        verifiers that different apps serve; then each app gets the ones it serves."""
        if not request.verifiers:
            if not request.HasField("sample") or not request.sample.task:
                raise SampleError("sample.task", "must be a non-empty string when no verifier is named")
            try:
                primary = self._routing.primary(request.sample.task)
            except SampleError as exc:
                raise SampleError("sample.task", exc.message) from None
            if primary not in self._targets:
                raise SampleError("sample.task", f"task {request.sample.task!r} routes to {primary!r}, "
                                  "which no app serves")
            return [(self._targets[primary], [], request)]
        by_target: dict[str, list[str]] = {}
        for name in request.verifiers:
            by_target.setdefault(self._owner(name, "verifiers"), []).append(name)
        if len(by_target) == 1:
            return [(target, names, request) for target, names in by_target.items()]
        return [(target, names, verifier_pb2.ScoreRequest(sample=request.sample, verifiers=names))
                for target, names in by_target.items()]

    async def _remote(self, owner: str, method: str, request: Any) -> Any:
        """Call `method` on the app (through its handle) or external server `owner`; failures as ServiceError."""
        try:
            if owner in self._external:
                stub, cfg = self._external[owner]
                return await getattr(stub, method)(request, timeout=cfg.timeout_s)
            return await getattr(self._handles[owner], method).remote(request)
        except ServiceError:
            raise
        except BackPressureError as exc:
            raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{owner}: {exc}") from None
        except (DeploymentUnavailableError, RayActorError) as exc:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"{owner}: {type(exc).__name__}: {exc}") from None
        except grpc.aio.AioRpcError as exc:
            raise ServiceError(exc.code(), f"{owner}: {exc.details()}") from None

    async def _forward(self, owner: str, requests: list[verifier_pb2.ScoreRequest]) -> list[Any]:
        response = await self._remote(owner, "ScoreBatch", verifier_pb2.ScoreBatchRequest(requests=requests))
        return list(response.results)

    async def _dispatch(self, requests: list[verifier_pb2.ScoreRequest]) -> list[Any]:
        """One result per request, in order; unroutable requests get their input error as a result."""
        results: list[Any] = [None] * len(requests)
        groups: dict[str, list[tuple[int, list[str], verifier_pb2.ScoreRequest]]] = {}
        for i, request in enumerate(requests):
            try:
                parts = self._parts(request)
            except SampleError as exc:
                results[i] = convert.input_error_to_proto(request.sample.id, exc)
                continue
            for target, names, part in parts:
                groups.setdefault(target, []).append((i, names, part))
        targets = list(groups)
        answers = await asyncio.gather(*(self._forward(t, [part for _, _, part in groups[t]]) for t in targets))
        answered: dict[int, list[tuple[list[str], Any]]] = {}
        for target, answer in zip(targets, answers, strict=True):
            for (i, names, _), result in zip(groups[target], answer, strict=True):
                answered.setdefault(i, []).append((names, result))
        for i, parts in answered.items():
            results[i] = parts[0][1] if len(parts) == 1 else _merge(requests[i], parts)
        return results

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def _score_many(self, requests: list[verifier_pb2.ScoreRequest]) -> list[Any]:
        return await self._dispatch(requests)

    # --- arbiter.v1.Verifier ----------------------------------------------------------------

    async def Score(self, request: verifier_pb2.ScoreRequest, grpc_context: Any = None) -> Any:
        async def call() -> Any:
            result = await self._score_many(request)
            if result.HasField("error"):
                raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"{result.error.field}: {result.error.message}")
            return result

        return await self._edge.unary(call, grpc_context, verifier_pb2.ScoreResult())

    async def ScoreBatch(self, request: verifier_pb2.ScoreBatchRequest, grpc_context: Any = None) -> Any:
        async def call() -> Any:
            return verifier_pb2.ScoreBatchResponse(results=await self._dispatch(list(request.requests)))

        return await self._edge.unary(call, grpc_context, verifier_pb2.ScoreBatchResponse())

    async def ScoreStream(self, request_stream: AsyncIterator[Any], grpc_context: Any = None) -> AsyncIterator[Any]:
        async for result in self._edge.stream(lambda: self._stream(request_stream), grpc_context):
            yield result

    async def _stream(self, request_stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Results as each is ready (services.streams); each sample is batched with whatever else is
        in flight. Reading stops while STREAM_WINDOW samples are unanswered: flow control then slows
        the sender."""
        window = asyncio.Semaphore(STREAM_WINDOW)
        async for result in keyed_results(request_stream, self._score_many, window.acquire, window.release):
            yield result

    async def ListVerifiers(self, request: verifier_pb2.ListVerifiersRequest, grpc_context: Any = None) -> Any:
        async def call() -> Any:
            owners = sorted(set(self._targets.values()))
            answers = await asyncio.gather(*(self._remote(owner, "ListVerifiers", request) for owner in owners))
            infos: dict[str, Any] = {}
            totals = {"hits": 0, "misses": 0, "entries": 0, "capacity": 0}
            for owner, answer in zip(owners, answers, strict=True):
                for info in answer.verifiers:
                    if self._targets.get(info.name) == owner:  # secondaries are also listed by other apps
                        infos[info.name] = info
                        if owner in self._external:
                            info.address = info.address or self._external[owner][1].address
                for key in totals:
                    totals[key] += getattr(answer.cache, key)
            return verifier_pb2.ListVerifiersResponse(
                verifiers=[infos[name] for name in sorted(infos)],
                tasks=convert.routing_to_proto(self._routing),
                cache=convert.cache_stats_to_proto(totals),
            )

        return await self._edge.unary(call, grpc_context, verifier_pb2.ListVerifiersResponse())

    async def Describe(self, request: verifier_pb2.DescribeRequest, grpc_context: Any = None) -> Any:
        async def call() -> Any:
            owner = self._targets.get(request.name)
            if owner is None:
                known = ", ".join(sorted(self._targets))
                raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"name: unknown verifier {request.name!r}; served: {known}")
            return await self._remote(owner, "Describe", request)

        return await self._edge.unary(call, grpc_context, verifier_pb2.DescribeResponse())

    # --- arbiter.v1.Sandbox: run by the replicas of the app serving `code` ---------------------

    async def _sandbox(self, method: str, request: Any) -> Any:
        owner = self._targets.get("code")
        if owner is None or owner in self._external:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, "the Sandbox service runs in the app serving "
                                                                    "the code verifier, and this cluster deploys none")
        return await self._remote(owner, method, request)

    async def Execute(self, request: sandbox_pb2.ExecuteRequest, grpc_context: Any = None) -> Any:
        return await self._edge.unary(lambda: self._sandbox("Execute", request), grpc_context,
                                      sandbox_pb2.ExecuteResponse())

    async def Grade(self, request: sandbox_pb2.GradeRequest, grpc_context: Any = None) -> Any:
        return await self._edge.unary(lambda: self._sandbox("Grade", request), grpc_context,
                                      sandbox_pb2.GradeResponse())


def _merge(request: verifier_pb2.ScoreRequest, parts: list[tuple[list[str], Any]]) -> verifier_pb2.ScoreResult:
    """One result for a request split across apps, as one app serving all its verifiers would answer:
    components in the requested order and no reward (the caller, who named them, composes)."""
    for names, part in parts:
        if part.HasField("error") or len(part.components) < len(names):
            return part  # an input error, or a job that faulted before all its verifiers answered: as is
    answers = {name: convert.component_of(part, name) for names, part in parts for name in names}
    components = [(name, 1.0, answers[name]) for name in request.verifiers]
    verdict, detail = verdict_of(components)
    scored = ScoredSample(request.sample.id or None, None, verdict, {n: r for n, _, r in components},
                          max(part.elapsed_ms for _, part in parts), detail)
    return convert.scored_to_proto(scored, [n for _, part in parts for n in convert.cached_names(part)])
