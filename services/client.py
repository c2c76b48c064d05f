"""The asyncio client shared by the trainer, `arbiter score --endpoint` and users.

    async with VerifierClient(ClientConfig(endpoint="127.0.0.1:50051")) as client:
        scored = await client.score(samples)          # one ScoredSample per sample, in order

The client routes each sample itself with rewards.routing (the same config as
`arbiter score`): one request per (sample, endpoint) naming the routed verifiers
served there (ClientConfig.endpoints, else the default endpoint), and composes
the components with rewards.compose.compose, so a task may mix built-in
verifiers with an external one served elsewhere. Requests are batched per
endpoint (up to max_batch, or whatever arrived within max_wait_ms) into
ScoreBatch calls under one concurrency limit; every call has a deadline;
UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED and INTERNAL are retried with
exponential back-off (scoring is idempotent by sample id). A verifier's fault
(TIMEOUT/ERROR) follows its FaultPolicy. Every sample comes back exactly once:
a result, an input error naming the field, or an explicit ERROR.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc

from arbiter.v1 import verifier_pb2, verifier_pb2_grpc
from rewards.compose import ScoredSample, compose
from rewards.routing import DEFAULT_ROUTING, RoutingConfig
from rewards.types import Sample, SampleError, VerifierResult
from services import convert
from services.auth import channel_credentials, token_metadata
from services.config import ClientConfig, FaultPolicy, check

# INTERNAL is what Serve's proxy answers when the replica holding a call dies ("may or may not have
# been executed on the actor"); scoring is idempotent by sample id, so a retry is always safe.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                       grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL})
# Misconfiguration, not bad luck: retrying or reporting per sample would only hide it.
FATAL = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                   grpc.StatusCode.UNIMPLEMENTED})
_MAX_MESSAGE_BYTES = 64 << 20


class VerifierFault(RuntimeError):
    """A verifier under FaultPolicy.FAIL faulted: the caller should fail the step."""

    def __init__(self, verifier: str, sample_id: str, result: VerifierResult) -> None:
        super().__init__(f"verifier {verifier!r} faulted on sample {sample_id!r}: {result.verdict.value}: "
                         f"{result.detail}")
        self.verifier, self.sample_id, self.result = verifier, sample_id, result


class ClientError(RuntimeError):
    """A call failed in a way no retry can mend (wrong token, missing service)."""

    def __init__(self, endpoint: str, error: grpc.aio.AioRpcError) -> None:
        super().__init__(f"{endpoint}: {error.code().name}: {error.details()}")
        self.code = error.code()


@dataclass
class _RpcFailure(Exception):
    code: grpc.StatusCode
    details: str
    attempts: int


@dataclass
class _Components:
    """What one endpoint answered for one sample: its verifiers' results and the server-measured
    scoring times (ms) of the replies they came in."""

    results: dict[str, VerifierResult]
    scoring_ms: list[float]


@dataclass
class _Item:
    request: verifier_pb2.ScoreRequest
    future: asyncio.Future[verifier_pb2.ScoreResult] = field(repr=False)


class _Endpoint:
    """One channel and its batcher: collects requests into ScoreBatch calls."""

    def __init__(self, client: VerifierClient, address: str) -> None:
        self.client, self.address = client, address
        cfg = client.config
        options = [("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES)]
        if cfg.tls_ca_file:
            creds = channel_credentials(cfg.tls_ca_file, cfg.tls_cert_file, cfg.tls_key_file)
            self.channel = grpc.aio.secure_channel(address, creds, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(address, options=options)
        self.stub = verifier_pb2_grpc.VerifierStub(self.channel)
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.added = asyncio.Event()
        self.sends: set[asyncio.Task[None]] = set()
        self.batcher = asyncio.ensure_future(self._collect())

    async def submit(self, request: verifier_pb2.ScoreRequest) -> verifier_pb2.ScoreResult:
        item = _Item(request, asyncio.get_running_loop().create_future())
        self.queue.put_nowait(item)
        self.added.set()
        return await item.future

    async def _collect(self) -> None:
        cfg = self.client.config
        while True:
            batch = [await self.queue.get()]
            deadline = time.monotonic() + cfg.max_wait_ms / 1000
            while len(batch) < cfg.max_batch:
                # Wait on an event, never on a cancellable queue.get(): a get cancelled by a timeout
                # can swallow an item, and that sample would never come back.
                self.added.clear()
                try:
                    batch.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self.added.wait(), remaining)
                except TimeoutError:
                    break
            task = asyncio.ensure_future(self._send([i for i in batch if not i.future.done()]))
            self.sends.add(task)
            task.add_done_callback(self.sends.discard)

    async def _send(self, batch: list[_Item]) -> None:
        if not batch:
            return
        cfg = self.client.config
        request = verifier_pb2.ScoreBatchRequest(requests=[i.request for i in batch])
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.client.slots:
                    response = await self.stub.ScoreBatch(request, timeout=cfg.deadline_s,
                                                          metadata=self.client.metadata)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in FATAL:
                    _settle(batch, ClientError(self.address, exc))
                    return
                if exc.code() in RETRYABLE and attempt <= cfg.retries:
                    await asyncio.sleep(self.client.backoff_s(attempt))
                    continue
                _settle(batch, _RpcFailure(exc.code(), exc.details() or "", attempt))
                return
            except BaseException as exc:  # cancelled, or a local bug: no caller may wait forever
                _settle(batch, exc)
                raise
            for item, result in zip(batch, response.results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
            return

    async def close(self) -> None:
        self.batcher.cancel()
        for task in list(self.sends):
            task.cancel()
        await self.channel.close()


def _settle(batch: list[_Item], error: BaseException) -> None:
    """Answer every waiting item with `error` (a cancellation cancels them)."""
    for item in batch:
        if item.future.done():
            continue
        if isinstance(error, Exception):
            item.future.set_exception(error)
        else:
            item.future.cancel()


class VerifierClient:
    """Score samples against one or more arbiter.v1.Verifier endpoints; use inside a running event loop."""

    def __init__(self, config: ClientConfig, routing: RoutingConfig | None = None) -> None:
        check(config)
        self.config = config
        self.routing = routing if routing is not None else DEFAULT_ROUTING
        self.metadata = token_metadata(config.token) + (
            (("application", config.application),) if config.application else ()
        )
        self._endpoints: dict[str, _Endpoint] = {}
        self._slots: asyncio.Semaphore | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.max_concurrency)
        return self._slots

    async def __aenter__(self) -> VerifierClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        for endpoint in self._endpoints.values():
            await endpoint.close()
        self._endpoints.clear()

    def backoff_s(self, attempt: int) -> float:
        cfg = self.config
        return min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def endpoint_of(self, verifier: str) -> str:
        return self.config.endpoints.get(verifier, self.config.endpoint)

    def _endpoint(self, address: str) -> _Endpoint:
        if address not in self._endpoints:
            self._endpoints[address] = _Endpoint(self, address)
        return self._endpoints[address]

    def policy(self, verifier: str) -> FaultPolicy:
        return self.config.fault_policy.get(verifier, self.config.default_fault_policy)

    async def score(self, samples: Sequence[Sample]) -> list[ScoredSample]:
        """Exactly one result per sample, in input order. Raises VerifierFault, ClientError."""
        tasks = [asyncio.ensure_future(self.score_one(s)) for s in samples]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()

    async def score_stream(self, samples: AsyncIterable[Sample]) -> AsyncIterator[ScoredSample]:
        """Results as they complete (match them by id); at most a few batches per endpoint in flight."""
        limit = self.config.max_batch * self.config.max_concurrency * 2
        pending: set[asyncio.Task[ScoredSample]] = set()
        try:
            async for sample in samples:
                pending.add(asyncio.ensure_future(self.score_one(sample)))
                while len(pending) >= limit:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        yield task.result()
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        finally:
            for task in pending:
                task.cancel()

    async def score_one(self, sample: Sample) -> ScoredSample:
        """One sample's result. Its `elapsed_ms` is the sample's own scoring time as the server measured
        it (the longest of its endpoints' replies), like in-process scoring; waiting to be batched, for a
        call slot or for the network is not in it. A sample no server answered counts the time the
        client spent on it."""
        start = time.perf_counter()
        try:
            route = self.routing.route(sample.task)
        except SampleError as exc:
            return ScoredSample.input_error(sample.id, exc)
        message = convert.sample_to_proto(sample)
        by_endpoint: dict[str, list[str]] = {}
        for wv in route:
            by_endpoint.setdefault(self.endpoint_of(wv.verifier), []).append(wv.verifier)
        replies = await asyncio.gather(*(self._components(self._endpoint(address), message, names)
                                         for address, names in by_endpoint.items()))
        results: dict[str, VerifierResult] = {}
        scoring_ms: list[float] = []
        for reply in replies:
            if isinstance(reply, SampleError):
                return ScoredSample.input_error(sample.id, reply, (time.perf_counter() - start) * 1000)
            results.update(reply.results)
            scoring_ms.extend(reply.scoring_ms)
        components: list[tuple[str, float, VerifierResult]] = []
        for wv in route:
            result = results[wv.verifier]
            if result.verdict.is_fault:
                policy = self.policy(wv.verifier)
                if policy is FaultPolicy.FAIL:
                    raise VerifierFault(wv.verifier, sample.id, result)
                if policy is FaultPolicy.MASK:
                    result = VerifierResult.not_applicable(f"masked {result.verdict.value}: {result.detail}")
            components.append((wv.verifier, wv.weight, result))
        reward, verdict, detail = compose(components)
        elapsed_ms = max(scoring_ms) if scoring_ms else (time.perf_counter() - start) * 1000
        return ScoredSample(sample.id, reward, verdict, {n: r for n, _, r in components}, elapsed_ms, detail)

    async def _components(self, endpoint: _Endpoint, message: verifier_pb2.Sample, verifiers: list[str]
                          ) -> _Components | SampleError:
        """The results of verifiers served at one endpoint, from one request; a result that faulted is
        re-scored alone while its policy says RETRY."""

        async def alone(name: str) -> tuple[VerifierResult, float]:
            reply = await self._ask(endpoint, message, [name])
            return convert.component_of(reply, name), reply.elapsed_ms

        results: dict[str, VerifierResult] = {}
        scoring_ms: dict[str, float] = {}  # per verifier, the server's time of the reply its result came in
        try:
            reply = await self._ask(endpoint, message, verifiers)
            for name in verifiers:
                # Missing from a shared reply: the job faulted on another verifier; this one is asked alone.
                shared_fault = len(verifiers) > 1 and not any(c.verifier == name for c in reply.components)
                result, ms = await alone(name) if shared_fault else (convert.component_of(reply, name),
                                                                      reply.elapsed_ms)
                tries = self.config.retries if self.policy(name) is FaultPolicy.RETRY else 0
                while result.verdict.is_fault and tries > 0:
                    tries -= 1
                    result, ms = await alone(name)
                results[name], scoring_ms[name] = result, ms
        except SampleError as exc:
            return exc
        except _RpcFailure as exc:  # already retried by the batcher where that could help
            error = VerifierResult.error(f"{endpoint.address}: {exc.code.name} after {exc.attempts} attempt(s): "
                                         f"{exc.details}")
            return _Components({name: results.get(name, error) for name in verifiers}, list(scoring_ms.values()))
        return _Components(results, list(scoring_ms.values()))

    @staticmethod
    async def _ask(endpoint: _Endpoint, message: verifier_pb2.Sample, verifiers: list[str]
                   ) -> verifier_pb2.ScoreResult:
        """The reply; a SampleError when the server rejects the sample."""
        reply = await endpoint.submit(verifier_pb2.ScoreRequest(sample=message, verifiers=verifiers))
        if reply.HasField("error"):
            raise SampleError(convert.field_from_wire(reply.error.field), reply.error.message)
        return reply


def score_sync(config: ClientConfig, samples: Sequence[Sample], routing: RoutingConfig | None = None
               ) -> list[ScoredSample]:
    """Blocking helper for CLI use: score `samples` and close the client."""

    async def run() -> list[ScoredSample]:
        async with VerifierClient(config, routing) as client:
            return await client.score(samples)

    return asyncio.run(run())
