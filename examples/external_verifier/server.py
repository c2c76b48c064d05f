"""An external verifier: its own process, its own logic, speaking arbiter.v1.Verifier.

    python examples/external_verifier/server.py --port 50061

It serves one verifier, `json_match`: the text inside the last <answer>...</answer>
must parse as JSON and equal the sample's gold answer (also JSON). It imports
only the generated stubs, not Arbiter's packages, to show what a verifier
written elsewhere needs. Point a client at it by address:

    VerifierClient(ClientConfig(endpoint="arbiter:50051", endpoints={"json_match": "127.0.0.1:50061"}),
                   RoutingConfig.from_tasks({"json": {"json_match": 1.0}}))
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for the `arbiter.v1` stubs

from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc

NAME, VERSION = "json_match", "1"
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


class BadSample(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def judge(sample: verifier_pb2.Sample) -> verifier_pb2.VerifierResult:
    if not sample.HasField("answer"):
        raise BadSample("sample.answer", "json_match needs a gold answer")
    try:
        gold = json.loads(sample.answer)
    except json.JSONDecodeError as exc:
        raise BadSample("sample.answer", f"gold answer is not JSON: {exc.msg}") from None
    found = _ANSWER.findall(sample.completion)
    if not found:
        return verifier_pb2.VerifierResult(verdict=common_pb2.VERDICT_NO_ANSWER, score=0.0, detail="no <answer> tag")
    text = found[-1].strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return verifier_pb2.VerifierResult(verdict=common_pb2.VERDICT_INCORRECT, score=0.0, answer=text,
                                           detail=f"answer is not JSON: {exc.msg}")
    if value == gold:
        return verifier_pb2.VerifierResult(verdict=common_pb2.VERDICT_CORRECT, score=1.0, answer=text)
    return verifier_pb2.VerifierResult(verdict=common_pb2.VERDICT_INCORRECT, score=0.0, answer=text,
                                       detail="JSON differs from the gold answer")


def score(request: verifier_pb2.ScoreRequest) -> verifier_pb2.ScoreResult:
    """One result; a bad sample becomes a result carrying the field error."""
    start = time.perf_counter()
    sample = request.sample
    try:
        if list(request.verifiers) not in ([], [NAME]):
            raise BadSample("verifiers", f"unknown verifiers {list(request.verifiers)!r}; served: {NAME}")
        if not sample.id:
            raise BadSample("sample.id", "must be a non-empty string")
        result = judge(sample)
    except BadSample as exc:
        return verifier_pb2.ScoreResult(id=sample.id, verdict=common_pb2.VERDICT_ERROR, detail=exc.message,
                                        error=verifier_pb2.FieldError(field=exc.field, message=exc.message))
    reply = verifier_pb2.ScoreResult(id=sample.id, verdict=result.verdict, detail=result.detail,
                                     components=[verifier_pb2.Component(verifier=NAME, result=result)],
                                     elapsed_ms=(time.perf_counter() - start) * 1000)
    if result.HasField("score") and not request.verifiers:  # routed by task here: composed here
        reply.reward = result.score
    return reply


class JsonMatchServicer(verifier_pb2_grpc.VerifierServicer):
    async def Score(self, request, context):
        result = score(request)
        if result.HasField("error"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{result.error.field}: {result.error.message}")
        return result

    async def ScoreBatch(self, request, context):
        return verifier_pb2.ScoreBatchResponse(results=[score(r) for r in request.requests])

    async def ScoreStream(self, request_iterator, context):
        async for request in request_iterator:
            yield score(request)

    def _info(self) -> verifier_pb2.VerifierInfo:
        return verifier_pb2.VerifierInfo(name=NAME, version=VERSION, reference=verifier_pb2.REFERENCE_ANSWER)

    async def ListVerifiers(self, request, context):
        route = verifier_pb2.TaskRoute(task="json", verifiers=[verifier_pb2.TaskRoute.Weighted(verifier=NAME,
                                                                                                weight=1.0)])
        return verifier_pb2.ListVerifiersResponse(verifiers=[self._info()], tasks=[route])

    async def Describe(self, request, context):
        if request.name != NAME:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"name: unknown verifier {request.name!r}")
        return verifier_pb2.DescribeResponse(verifier=self._info())


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server()
    verifier_pb2_grpc.add_VerifierServicer_to_server(JsonMatchServicer(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"json_match verifier listening on {host}:{bound}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50061)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
