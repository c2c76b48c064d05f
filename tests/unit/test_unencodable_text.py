"""Text no encoder can write (lone surrogates) never costs a record: made encodable where it enters."""

from __future__ import annotations

import json
from pathlib import Path

from arbiter.cli import main
from rewards.compose import ScoredSample
from rewards.types import Verdict, VerifierResult
from sandbox.api import RunResult, Status, encodable
from sandbox.grading.function_tests import STARTED_MARKER, parse_report
from services import convert

LONE = "x" + chr(0xDC80) + "y" + chr(0xD800)


def test_encodable_spells_lone_surrogates_as_escapes_and_keeps_the_rest():
    assert encodable(LONE) == "x\\udc80y\\ud800"
    assert encodable("plain ünïcode ✓") == "plain ünïcode ✓"
    encodable(LONE).encode("utf-8")


def test_referee_report_quoting_a_candidate_is_encodable():
    record = {"test": 0, "status": "error", "detail": "ValueError: " + LONE}
    report_bytes = f"{STARTED_MARKER}\nN {json.dumps(record)}\n".encode()
    result = RunResult(Status.OK, 0, None, "", "", 0.1, 0.1, None, "", report_bytes)
    (outcome,) = parse_report(result, "N", ("t",)).outcomes
    assert outcome.detail == "ValueError: x\\udc80y\\ud800"


def test_result_with_unencodable_texts_converts_to_a_message():
    result = VerifierResult(Verdict.INCORRECT, 0.0, "detail " + LONE, answer=LONE)
    scored = ScoredSample(id=LONE, reward=0.0, verdict=Verdict.INCORRECT, components={"v": result},
                          elapsed_ms=1.0, detail=LONE)
    message = convert.scored_to_proto(scored)
    wire = message.SerializeToString()
    assert message.FromString(wire).components[0].result.answer == "x\\udc80y\\ud800"


def test_cli_writes_an_unencodable_id_as_a_json_escape_and_keeps_every_line(tmp_path: Path):
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"id": LONE, "task": "format", "completion": "<think>a</think><answer>" + LONE + "</answer>"},
            {"id": "after", "task": "format", "completion": "<think>a</think><answer>1</answer>"}]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["score", "--input", str(source), "--output", str(output), "--verifier", "format"]) == 0
    records = [json.loads(line) for line in output.read_bytes().decode("utf-8").splitlines()]
    assert [r["id"] for r in records] == [LONE, "after"]
