"""`arbiter score --endpoint` against a real server gives the records in-process scoring gives."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from grpc_harness import RunningServer

from arbiter.cli import main
from services.config import ScoringConfig, ServerConfig
from tests.conftest import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "math_samples.jsonl"


@pytest.fixture(scope="module")
def math_server():
    server = RunningServer(
        ServerConfig(host="127.0.0.1", port=0, scoring=ScoringConfig(worker_processes=2, verifiers=("math", "format")))
    )
    yield server
    server.stop()


def records(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.pop("elapsed_ms", None)
        out.append(record)
    return out


@pytest.mark.parametrize("extra", [[], ["--verifier", "format"]])
def test_endpoint_scoring_matches_in_process_scoring(math_server, tmp_path, extra):
    local, remote = tmp_path / "local.jsonl", tmp_path / "remote.jsonl"
    assert main(["score", "--input", str(EXAMPLES), "--output", str(local), *extra]) == 0
    assert main(["score", "--input", str(EXAMPLES), "--output", str(remote),
                 "--endpoint", math_server.address, *extra]) == 0
    assert records(remote) == records(local)


def test_endpoint_input_errors_are_records_naming_line_and_field(math_server, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "task": "math", "completion": "<answer>1</answer>", "answer": "1"}\n'
                      '{"id": "b", "task": "poetry", "completion": "x"}\n'
                      '{"id": "c", "completion": "x"}\n')
    out = tmp_path / "out.jsonl"
    assert main(["score", "--input", str(source), "--output", str(out), "--endpoint", math_server.address]) == 0
    lines = records(out)
    assert [r["id"] for r in lines] == ["a", "b", "c"]
    assert lines[1]["error"]["field"] == "task"
    assert (lines[2]["line"], lines[2]["error"]["field"]) == (3, "task")


def test_endpoint_latency_is_each_samples_own_scoring_time(math_server, tmp_path, capsys):
    out = tmp_path / "remote.jsonl"
    started = time.perf_counter()
    assert main(["score", "--input", str(EXAMPLES), "--output", str(out), "--endpoint", math_server.address]) == 0
    wall_ms = (time.perf_counter() - started) * 1000
    latencies = [json.loads(line)["elapsed_ms"] for line in out.read_text().splitlines()]
    assert len(latencies) == 36 and all(ms > 0 for ms in latencies)
    # The server's 2 worker processes score one sample at a time each, so the samples' own scoring
    # intervals fit twice into the run. Counted from the moment the batch was formed (as before),
    # each of the 36 samples would carry about the whole batch's time, and the sum about 36 runs.
    assert sum(latencies) <= 2 * wall_ms
    assert "from the start of its scoring to its result" in capsys.readouterr().err


def test_unreachable_endpoint_gives_every_sample_an_explicit_error(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    out = tmp_path / "out.jsonl"
    assert main(["score", "--input", str(EXAMPLES), "--output", str(out), "--endpoint", address]) == 0
    lines = records(out)
    assert len(lines) == len(EXAMPLES.read_text().splitlines())
    assert all(r["verdict"] == "error" and r["reward"] is None and address in r["detail"] for r in lines)
