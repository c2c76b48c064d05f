"""Candidates whose text no encoder can write, scored the ways a user scores: `arbiter score` and gRPC.

Meant to run inside the outer containment (containment.py), like contained.py. A candidate's
exception text or class name with a lone surrogate, or bytes that are not UTF-8 on its stdout,
travel through the sandbox into the verdict's detail; every line and every batch item must come
back, the honest sample after them included. The gRPC batch is sent twice, so the second one is
answered from the verdict cache. Reports as JSON on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ASSERT_TESTS = {"kind": "assert", "entry_point": "double",
                "test": "def check(candidate):\n    assert candidate(2) == 4\n"}
STDIO_TESTS = {"kind": "stdio", "cases": [{"stdin": "2\n", "stdout": "4\n"}]}
CANDIDATES = {
    "surrogate_exception_text": ("def double(x):\n    raise ValueError('x' + chr(0xDC80))\n", ASSERT_TESTS),
    # Python will not name a class so; a contestant forging its reply on the wire does.
    "surrogate_class_name": ("import os\n\ndef double(x):\n"
                             "    os.write(4, b'[\"raise\", \"E\\\\udcff\", \"forged\"]\\n')\n    os._exit(0)\n",
                             ASSERT_TESTS),
    "surrogate_load_error": ("raise ValueError(chr(0xD800))\n", ASSERT_TESTS),
    "non_utf8_output": ("import sys\nsys.stdout.buffer.write(b'\\xff\\xfe\\xed\\n')\n"
                        "sys.stderr.buffer.write(b'\\xc3\\x28')\nraise SystemExit(1)\n", STDIO_TESTS),
    "honest": ("def double(x):\n    return 2 * x\n", ASSERT_TESTS),
}
HONEST_STDIO = "print(2 * int(input()))\n"


def samples() -> list[dict]:
    rows = [{"id": name, "task": "code", "completion": f"```python\n{code}```", "tests": tests}
            for name, (code, tests) in CANDIDATES.items()]
    rows.append({"id": "honest_stdio", "task": "code", "completion": f"```python\n{HONEST_STDIO}```",
                 "tests": STDIO_TESTS})
    return rows


def through_cli(directory: Path) -> dict:
    source, output = directory / "in.jsonl", directory / "out.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in samples()))
    done = subprocess.run([sys.executable, "-m", "arbiter", "score", "--input", str(source), "--output", str(output),
                           "--verifier", "code"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    raw = output.read_bytes() if output.exists() else b""
    raw.decode("utf-8")  # strict: the file itself is valid UTF-8
    records = [json.loads(line) for line in raw.splitlines()]
    return {"returncode": done.returncode, "stderr": done.stderr[-2000:],
            "verdicts": {r["id"]: r["verdict"] for r in records},
            "details": {r["id"]: r["components"]["code"]["detail"] for r in records}}


def through_grpc() -> dict:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]
    import grpc
    from grpc_harness import RunningServer

    from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
    from services.config import ScoringConfig, ServerConfig

    server = RunningServer(ServerConfig(port=0, scoring=ScoringConfig(worker_processes=1, verifiers=("code",),
                                                                      sample_timeout_s=120.0)))
    try:
        batch = verifier_pb2.ScoreBatchRequest(requests=[
            verifier_pb2.ScoreRequest(verifiers=["code"], sample=verifier_pb2.Sample(
                id=row["id"], task=row["task"], completion=row["completion"], tests_json=json.dumps(row["tests"])))
            for row in samples()])
        rounds = []
        with grpc.insecure_channel(server.address) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            for _ in range(2):  # the second round is answered from the verdict cache
                try:
                    results = stub.ScoreBatch(batch, timeout=300).results
                except grpc.RpcError as exc:
                    rounds.append({"error": f"{exc.code()}: {exc.details()}"})
                    continue
                rounds.append({"verdicts": {r.id: common_pb2.Verdict.Name(r.verdict) for r in results},
                               "details": {r.id: r.components[0].result.detail for r in results},
                               "cached": {r.id: [c.cached for c in r.components] for r in results}})
        return {"rounds": rounds}
    finally:
        server.stop()


def main() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory() as scratch:
        report = {"cli": through_cli(Path(scratch)), "grpc": through_grpc()}
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
