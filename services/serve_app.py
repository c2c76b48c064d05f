"""Ray Serve hosting of arbiter.v1.Verifier: one application per verifier family, plug-ins, a router.

Applications (import paths for `serve run` / a KubeRay serveConfigV2, each a
builder taking an args mapping checked by a strict dataclass):

- ``services.serve_app:rules_app`` / ``math_app`` / ``code_app``: one family
  each (args: ``services.cluster_config.AppArgs``);
- ``services.serve_app:plugin_app``: one entry-point verifier of group
  ``arbiter.verifiers`` (args: ``PluginAppArgs``, e.g. ``{verifier: NAME}``);
- ``services.serve_app:router_app``: takes any verifier or task and forwards it
  to the application that serves it, or to an external server registered by
  address (args: ``RouterAppArgs``).

Deployment names (stable; a serveConfigV2 `deployments:` override uses them):
``Verifier`` in every family and plug-in app, ``Router`` in the router app.
Importing this module or calling a builder starts nothing (no ray.init, no serve.start).

All are reached through Serve's gRPC proxy, started with
``grpc_servicer_functions=SERVICER_FUNCTIONS`` (arbiter.v1.Verifier and
arbiter.v1.Sandbox). With several applications deployed a client must send the
metadata ``application: NAME``. Sandbox calls run in the worker processes of the
app serving `code` (the router forwards them there), with the standalone
server's SandboxServicer.

A replica wraps the one servicer implementation (services.servicer): reward
code runs in its worker processes, never on the replica's event loop, and a
ScoreBatch of 64 is spread over all of them. A task-routed sample is scored
where its primary verifier lives, so a family replica also serves the cheap
secondary verifiers its tasks route to (the math app scores `format` for the
`math` task).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from arbiter.v1 import sandbox_pb2, verifier_pb2, verifier_pb2_grpc
from rewards.compose import ScoredSample, compose
from rewards.routing import RoutingConfig
from rewards.types import SampleError
from services import convert
from services.auth import REFUSAL, bearer_ok, token_from_env
from services.cluster_config import (
    FAMILY_VERIFIERS,
    ROUTER_APP,
    AppArgs,
    ClusterConfig,
    PluginAppArgs,
    RouterAppArgs,
    app_args,
)
from services.config import from_dict
from services.drain import DrainWatch
from services.ray_metrics import RayMetrics
from services.servicer import SandboxServicer, ServiceError, VerifierServicer

SERVICER_FUNCTION = "arbiter.v1.verifier_pb2_grpc.add_VerifierServicer_to_server"
SANDBOX_SERVICER_FUNCTION = "arbiter.v1.sandbox_pb2_grpc.add_SandboxServicer_to_server"
SERVICER_FUNCTIONS = [SERVICER_FUNCTION, SANDBOX_SERVICER_FUNCTION]  # the whole arbiter.v1 contract
VERIFIER_DEPLOYMENT = "Verifier"
ROUTER_DEPLOYMENT = "Router"
STREAM_WINDOW = 256  # unanswered samples per ScoreStream at the router


class CallFailed(Exception):
    """A call-level gRPC failure that survives the trip between replicas (the code travels by name)."""

    def __init__(self, code_name: str, message: str) -> None:
        super().__init__(code_name, message)
        self.code = grpc.StatusCode[code_name]
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def _fail(context: Any, code: grpc.StatusCode, message: str) -> CallFailed:
    """Put the status on Serve's gRPC context and return the exception to raise (streams must raise)."""
    if context is not None:
        context.set_code(code)
        context.set_details(message)
    return CallFailed(code.name, message)


def _refuse(context: Any, code: grpc.StatusCode, message: str, empty: Any) -> Any:
    """A unary refusal: through the proxy, the status set on the context with an empty reply (an
    expected client error then logs no traceback); between replicas, where there is no context,
    CallFailed for the caller to pass on."""
    failure = _fail(context, code, message)
    if context is None:
        raise failure
    return empty


class _Auth:
    """The checks at a replica's edge, on Serve's context (Serve's proxy takes no interceptors): the
    bearer token of services.auth, and UNAVAILABLE while `arbiter serve` drains (services.drain)."""

    def __init__(self, token_env: str | None, drain: DrainWatch) -> None:
        self._token = token_from_env(token_env, "token_env", " in the replica")
        self.drain = drain

    def refusal(self, context: Any) -> CallFailed | None:
        """Why this call is refused, or None when it may proceed."""
        # A call between replicas (DeploymentHandle) carries no context: it was checked at the edge.
        if self._token is not None and context is not None and not bearer_ok(context.invocation_metadata(),
                                                                             self._token):
            return CallFailed("UNAUTHENTICATED", REFUSAL)
        draining = self.drain.refusal(context)
        return None if draining is None else CallFailed("UNAVAILABLE", draining)


async def _answer(auth: _Auth, call: Callable[[], Awaitable[Any]], context: Any, empty: Any) -> Any:
    """Run one unary call after the edge checks, turning ServiceError/CallFailed into its status."""
    refused = auth.refusal(context)
    if refused is not None:
        return _refuse(context, refused.code, refused.message, empty)
    try:
        with auth.drain.counted():
            return await call()
    except (ServiceError, CallFailed) as exc:
        return _refuse(context, exc.code, exc.message, empty)


def served_verifiers(own: tuple[str, ...], routing: RoutingConfig) -> tuple[str, ...]:
    """`own` plus every verifier that a task whose primary verifier is in `own` routes to."""
    served = set(own)
    for route in routing.tasks.values():
        if route[0].verifier in own:
            served.update(wv.verifier for wv in route)
    return tuple(sorted(served))


@serve.deployment(name=VERIFIER_DEPLOYMENT)
class VerifierReplica:
    """One replica of a family or plug-in app: the servicer over its own pool of worker processes."""

    async def __init__(self, scoring: Any, token_env: str | None) -> None:
        self._servicer = VerifierServicer(scoring, RayMetrics())  # exported by the node's metrics agent
        self._auth = _Auth(token_env, DrainWatch(close=self._servicer.close))
        self._sandbox = SandboxServicer(scoring.sandbox_caps, scoring.worker_processes, self._servicer)
        await self._servicer.start()

    async def Score(self, request: verifier_pb2.ScoreRequest, grpc_context: Any = None) -> Any:
        call = functools.partial(self._servicer.score, request)
        return await _answer(self._auth, call, grpc_context, verifier_pb2.ScoreResult())

    async def ScoreBatch(self, request: verifier_pb2.ScoreBatchRequest, grpc_context: Any = None) -> Any:
        call = functools.partial(self._servicer.score_batch, request)
        return await _answer(self._auth, call, grpc_context, verifier_pb2.ScoreBatchResponse())

    async def ScoreStream(self, request_stream: AsyncIterator[Any], grpc_context: Any = None) -> AsyncIterator[Any]:
        refused = self._auth.refusal(grpc_context)
        if refused is not None:
            raise _fail(grpc_context, refused.code, refused.message)
        try:
            with self._auth.drain.counted():
                async for result in self._servicer.score_stream(request_stream):
                    yield result
        except ServiceError as exc:
            raise _fail(grpc_context, exc.code, exc.message) from None

    async def ListVerifiers(self, request: verifier_pb2.ListVerifiersRequest, grpc_context: Any = None) -> Any:
        call = _now(self._servicer.list_verifiers, request)
        return await _answer(self._auth, call, grpc_context, verifier_pb2.ListVerifiersResponse())

    async def Describe(self, request: verifier_pb2.DescribeRequest, grpc_context: Any = None) -> Any:
        call = _now(self._servicer.describe, request)
        return await _answer(self._auth, call, grpc_context, verifier_pb2.DescribeResponse())

    async def Execute(self, request: sandbox_pb2.ExecuteRequest, grpc_context: Any = None) -> Any:
        call = functools.partial(self._sandbox.execute, request)
        return await _answer(self._auth, call, grpc_context, sandbox_pb2.ExecuteResponse())

    async def Grade(self, request: sandbox_pb2.GradeRequest, grpc_context: Any = None) -> Any:
        call = functools.partial(self._sandbox.grade, request)
        return await _answer(self._auth, call, grpc_context, sandbox_pb2.GradeResponse())

    def check_health(self) -> None:
        if not self._servicer.ready:
            raise RuntimeError("servicer is not ready (warming up or draining)")

    async def __del__(self) -> None:
        # Serve calls this after in-flight requests finished (graceful_shutdown_timeout_s).
        await self._servicer.close()


def _now(fn: Callable[[Any], Any], request: Any) -> Callable[[], Awaitable[Any]]:
    """A synchronous servicer method as an awaitable call (it only reads in-memory state)."""

    async def call() -> Any:
        return fn(request)

    return call


@serve.deployment(name=ROUTER_DEPLOYMENT)
class Router:
    """Forwards each sample to the app serving its verifier (or its task's primary verifier); a
    request naming verifiers that several apps serve is split between them and the answers merged.

    Single samples from Score and ScoreStream are gathered into batches with serve.batch, so
    the per-call cost between replicas is paid once per batch, not once per sample.
    """

    async def __init__(self, args: RouterAppArgs) -> None:
        self._auth = _Auth(args.token_env, DrainWatch())
        self._routing = RoutingConfig.load_or_default(args.routing_file)
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

    def _target(self, request: verifier_pb2.ScoreRequest) -> str:
        """The app (or "external:NAME") that scores this request; SampleError when none does."""
        if request.verifier:
            return self._owner(request.verifier, "verifier")
        if not request.HasField("sample") or not request.sample.task:
            raise SampleError("sample.task", "must be a non-empty string when no verifier is named")
        try:
            primary = self._routing.route(request.sample.task)[0].verifier
        except SampleError as exc:
            raise SampleError("sample.task", exc.message) from None
        if primary not in self._targets:
            raise SampleError("sample.task", f"task {request.sample.task!r} routes to {primary!r}, which no app serves")
        return self._targets[primary]

    def _owner(self, verifier: str, field_name: str) -> str:
        if verifier not in self._targets:
            known = ", ".join(sorted(self._targets))
            raise SampleError(field_name, f"unknown verifier {verifier!r}; served: {known}")
        return self._targets[verifier]

    def _parts(self, request: verifier_pb2.ScoreRequest) -> list[tuple[str, list[str], verifier_pb2.ScoreRequest]]:
        """(target, verifiers it scores, request) for each app a request goes to: one, unless it names
        verifiers that different apps serve; then each app gets the ones it serves."""
        if request.verifier or not request.verifiers:
            return [(self._target(request), [request.verifier], request)]
        by_target: dict[str, list[str]] = {}
        for name in request.verifiers:
            by_target.setdefault(self._owner(name, "verifiers"), []).append(name)
        if len(by_target) == 1 and len(request.verifiers) > 1:
            return [(target, names, request) for target, names in by_target.items()]
        # A lone name is rewritten into `verifier`, the field an external server built earlier knows.
        return [(target, names, convert.score_request(request.sample, names)) for target, names in by_target.items()]

    async def _remote(self, owner: str, method: str, request: Any) -> Any:
        """Call `method` on the app (through its handle) or external server `owner`; failures as CallFailed."""
        try:
            if owner in self._external:
                stub, cfg = self._external[owner]
                return await getattr(stub, method)(request, timeout=cfg.timeout_s)
            return await getattr(self._handles[owner], method).remote(request)
        except CallFailed:
            raise
        except BackPressureError as exc:
            raise CallFailed("RESOURCE_EXHAUSTED", f"{owner}: {exc}") from None
        except (DeploymentUnavailableError, RayActorError) as exc:
            raise CallFailed("UNAVAILABLE", f"{owner}: {type(exc).__name__}: {exc}") from None
        except grpc.aio.AioRpcError as exc:
            raise CallFailed(exc.code().name, f"{owner}: {exc.details()}") from None

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
                sample_id = request.sample.id or None
                results[i] = convert.scored_to_proto(ScoredSample.input_error(sample_id, exc))
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
                raise CallFailed("INVALID_ARGUMENT", f"{result.error.field}: {result.error.message}")
            return result

        return await _answer(self._auth, call, grpc_context, verifier_pb2.ScoreResult())

    async def ScoreBatch(self, request: verifier_pb2.ScoreBatchRequest, grpc_context: Any = None) -> Any:
        async def call() -> Any:
            return verifier_pb2.ScoreBatchResponse(results=await self._dispatch(list(request.requests)))

        return await _answer(self._auth, call, grpc_context, verifier_pb2.ScoreBatchResponse())

    async def ScoreStream(self, request_stream: AsyncIterator[Any], grpc_context: Any = None) -> AsyncIterator[Any]:
        """Results in completion order; each sample is batched with whatever else is in flight."""
        refused = self._auth.refusal(grpc_context)
        if refused is not None:
            raise _fail(grpc_context, refused.code, refused.message)
        pending: set[asyncio.Task[Any]] = set()
        in_flight: set[str] = set()
        # Reading stops while this many samples are unanswered: flow control then slows the sender.
        window = asyncio.Semaphore(STREAM_WINDOW)

        async def read() -> None:
            async for request in request_stream:
                sample_id = request.sample.id
                if not sample_id or sample_id in in_flight:
                    why = "must be non-empty" if not sample_id else f"{sample_id!r} is already in flight on this stream"
                    raise CallFailed("INVALID_ARGUMENT", f"sample.id: {why}")
                await window.acquire()
                in_flight.add(sample_id)
                task = asyncio.ensure_future(self._score_many(request))
                task.add_done_callback(lambda _task: window.release())
                pending.add(task)

        reader = asyncio.ensure_future(read())
        try:
            with self._auth.drain.counted():
                while not reader.done() or pending:
                    waiting = {*pending} if reader.done() else {reader, *pending}
                    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    if reader in done:
                        reader.result()  # re-raises a malformed-stream error
                    for task in done - {reader}:
                        pending.discard(task)
                        result = task.result()
                        in_flight.discard(result.id)
                        yield result
        except CallFailed as exc:
            raise _fail(grpc_context, exc.code, exc.message) from None
        finally:
            reader.cancel()
            for task in pending:
                task.cancel()

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

        return await _answer(self._auth, call, grpc_context, verifier_pb2.ListVerifiersResponse())

    async def Describe(self, request: verifier_pb2.DescribeRequest, grpc_context: Any = None) -> Any:
        async def call() -> Any:
            owner = self._targets.get(request.name)
            if owner is None:
                known = ", ".join(sorted(self._targets))
                raise CallFailed("INVALID_ARGUMENT", f"name: unknown verifier {request.name!r}; served: {known}")
            return await self._remote(owner, "Describe", request)

        return await _answer(self._auth, call, grpc_context, verifier_pb2.DescribeResponse())

    # --- arbiter.v1.Sandbox: run by the replicas of the app serving `code` ---------------------

    async def _sandbox(self, method: str, request: Any) -> Any:
        owner = self._targets.get("code")
        if owner is None or owner in self._external:
            raise CallFailed("FAILED_PRECONDITION", "the Sandbox service runs in the app serving the code "
                                                    "verifier, and this cluster deploys none")
        return await self._remote(owner, method, request)

    async def Execute(self, request: sandbox_pb2.ExecuteRequest, grpc_context: Any = None) -> Any:
        call = functools.partial(self._sandbox, "Execute", request)
        return await _answer(self._auth, call, grpc_context, sandbox_pb2.ExecuteResponse())

    async def Grade(self, request: sandbox_pb2.GradeRequest, grpc_context: Any = None) -> Any:
        call = functools.partial(self._sandbox, "Grade", request)
        return await _answer(self._auth, call, grpc_context, sandbox_pb2.GradeResponse())


def _merge(request: verifier_pb2.ScoreRequest, parts: list[tuple[list[str], Any]]) -> verifier_pb2.ScoreResult:
    """One result for a request split across apps, as one app serving all its verifiers would answer:
    components in the requested order, their unweighted composition."""
    for names, part in parts:
        if part.HasField("error") or len(part.components) < len(names):
            return part  # an input error, or a job that faulted before all its verifiers answered: as is
    answers = {name: convert.component_of(part, name) for names, part in parts for name in names}
    components = [(name, 1.0, answers[name]) for name in request.verifiers]
    reward, verdict, detail = compose(components)
    scored = ScoredSample(request.sample.id or None, reward, verdict, {n: r for n, _, r in components},
                          max(part.elapsed_ms for _, part in parts), detail)
    return convert.scored_to_proto(scored, [n for _, part in parts for n in convert.cached_names(part)])


# --- application builders ----------------------------------------------------------------------


def _parse(cls: type, args: Any) -> Any:
    if dataclasses.is_dataclass(args):
        return args
    return from_dict(cls, dict(args or {}))


def _verifier_app(args: AppArgs, own: tuple[str, ...]) -> serve.Application:
    scoring = args.scoring
    if not scoring.verifiers:
        routing = RoutingConfig.load_or_default(scoring.routing_file)
        scoring = dataclasses.replace(scoring, verifiers=served_verifiers(own, routing))
    return VerifierReplica.options(**args.serve_options()).bind(scoring, args.token_env)


def rules_app(args: dict[str, Any]) -> serve.Application:
    """format, tag_count, language, cosine_length, overlong, repetition: cheap rule checks."""
    return _verifier_app(_parse(AppArgs, args), FAMILY_VERIFIERS["rules"])


def math_app(args: dict[str, Any]) -> serve.Application:
    return _verifier_app(_parse(AppArgs, args), FAMILY_VERIFIERS["math"])


def code_app(args: dict[str, Any]) -> serve.Application:
    return _verifier_app(_parse(AppArgs, args), FAMILY_VERIFIERS["code"])


def plugin_app(args: dict[str, Any]) -> serve.Application:
    """One verifier from the entry-point group arbiter.verifiers, deployed on its own."""
    parsed: PluginAppArgs = _parse(PluginAppArgs, args)
    return _verifier_app(parsed, (parsed.verifier,))


def router_app(args: dict[str, Any]) -> serve.Application:
    parsed: RouterAppArgs = _parse(RouterAppArgs, args)
    return Router.options(**parsed.router.serve_options()).bind(parsed)



def build_app(config: ClusterConfig, app: str) -> serve.Application:
    """The Serve application `app` of a cluster config, built as a Serve config file builds it."""
    builder = globals()[import_path(config, app).partition(":")[2]]  # the one serve_config names
    return builder(app_args(config, app))


def deploy(config: ClusterConfig) -> list[str]:
    """Deploy every application of `config` on the running Serve instance, all at once; returns their names.

    Blocks until every app is RUNNING (replicas constructed, worker pools warm). Each app
    needs a route prefix: Serve does not expose an app without one over gRPC.
    """
    names = config.app_names()
    serve.run_many([serve.RunTarget(build_app(config, name), name=name, route_prefix=f"/{name}") for name in names])
    return names


def import_path(config: ClusterConfig, app: str) -> str:
    """The builder of `app`, as a Serve config file names it."""
    if app == ROUTER_APP:
        return f"{__name__}:router_app"
    if app in config.plugins:
        return f"{__name__}:plugin_app"
    return f"{__name__}:{app}_app"


def serve_config(config: ClusterConfig) -> dict[str, Any]:
    """The Serve config file (what a KubeRay RayService's serveConfigV2 holds) that deploys what
    `arbiter serve` deploys for `config`."""
    return {
        "http_options": {"host": config.serve.http_host, "port": config.serve.http_port},
        "grpc_options": {
            "port": config.serve.grpc_port,
            "grpc_servicer_functions": SERVICER_FUNCTIONS,
            "request_timeout_s": config.serve.request_timeout_s,
        },
        "applications": [
            {
                "name": app,
                "route_prefix": f"/{app}",
                "import_path": import_path(config, app),
                "args": app_args(config, app),
            }
            for app in config.app_names()
        ],
    }
