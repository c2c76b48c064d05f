"""ScoreStream's bookkeeping, shared by the core and the router: results as each is ready, keyed by
sample id, and a bad item answered by its own error result while the stream goes on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from arbiter.v1 import verifier_pb2
from rewards.types import SampleError
from services import convert


async def keyed_results(
    requests: AsyncIterator[verifier_pb2.ScoreRequest],
    score: Callable[[verifier_pb2.ScoreRequest], Awaitable[verifier_pb2.ScoreResult]],
    admit: Callable[[], Awaitable[None]],
    release: Callable[[], None] = lambda: None,
    problem: Callable[[verifier_pb2.ScoreRequest], SampleError | None] = lambda request: None,
    rejected: Callable[[], None] = lambda: None,
) -> AsyncIterator[verifier_pb2.ScoreResult]:
    """Score each request as it arrives (after `admit()`, which may wait for room: flow control then
    slows the sender) and yield its result when ready; `release()` runs as each scoring ends. An item
    with no id, an id already in flight, or a `problem` gets an error result instead (and `rejected()`
    runs)."""
    ready: asyncio.Queue[Any] = asyncio.Queue()
    in_flight: set[str] = set()
    tasks: set[asyncio.Task[verifier_pb2.ScoreResult]] = set()
    end = object()

    def finished(task: asyncio.Task[verifier_pb2.ScoreResult]) -> None:
        tasks.discard(task)
        release()
        if not task.cancelled():
            ready.put_nowait(task)

    async def read() -> None:
        try:
            async for request in requests:
                sample_id = request.sample.id
                why = problem(request)
                if why is None and not sample_id:
                    why = SampleError("sample.id", "must be non-empty: stream results are keyed by it")
                if why is None and sample_id in in_flight:
                    why = SampleError("sample.id", f"{sample_id!r} is already in flight on this stream")
                if why is not None:
                    rejected()
                    ready.put_nowait(convert.input_error_to_proto(sample_id, why))
                    continue
                await admit()
                in_flight.add(sample_id)
                task = asyncio.ensure_future(score(request))
                tasks.add(task)
                task.add_done_callback(finished)
            ready.put_nowait(end)
        except BaseException as exc:
            ready.put_nowait(exc)
            raise

    reader = asyncio.ensure_future(read())
    reading = True
    try:
        while reading or tasks or not ready.empty():
            item = await ready.get()
            if item is end:
                reading = False
                continue
            if isinstance(item, BaseException):
                raise item
            result = item if isinstance(item, verifier_pb2.ScoreResult) else item.result()
            if item is not result:
                in_flight.discard(result.id)
            yield result
    finally:
        reader.cancel()
        for task in list(tasks):
            task.cancel()
