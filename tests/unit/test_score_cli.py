"""`arbiter score`: one output line per input line, in order, errors named; run in-process."""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from arbiter.cli import main
from arbiter.score import LocalScorer, VerifierLoadError, percentile, score_file
from rewards.compose import ScoredSample
from rewards.registry import Registry, default_registry
from rewards.types import Sample, VerifierResult

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "math_samples.jsonl"
GOOD = "<think>\nadd\n</think>\n<answer>\n\\boxed{5}\n</answer>"


def _write(path: Path, lines: list[str | dict]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "elapsed_ms"} for r in records]


def test_every_example_id_comes_back_once_in_input_order(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--input", str(EXAMPLES), "--output", str(out), "--verifier", "format"]) == 0
    ids = [json.loads(line)["id"] for line in EXAMPLES.read_text().splitlines()]
    records = _read(out)
    assert [r["id"] for r in records] == ids
    for record in records:
        assert set(record) >= {"id", "reward", "verdict", "components", "elapsed_ms"}
        assert record["verdict"] in ("correct", "incorrect")
        assert record["reward"] == record["components"]["format"]["score"]
    stderr = capsys.readouterr().err
    assert f"scored {len(ids)} lines" in stderr and "mean reward" in stderr and "p50" in stderr and "p99" in stderr


def test_malformed_lines_get_error_records_naming_line_and_field(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "task": "format", "completion": GOOD},
            "{not json",
            {"id": "b", "task": "format"},
            {"id": "c", "task": "format", "completion": 5},
            "",
            {"id": "a", "task": "format", "completion": GOOD},
            {"id": "d", "task": "nosuchtask", "completion": GOOD},
            {"id": "e", "task": "format", "completion": GOOD, "colour": "red"},
            [1, 2],
            {"id": "f", "task": "format", "completion": "no tags"},
        ],
    )
    out = tmp_path / "out.jsonl"
    assert main(["score", "--input", str(src), "--output", str(out)]) == 0
    records = _read(out)
    assert [r["id"] for r in records] == ["a", None, "b", "c", None, "a", "d", "e", None, "f"]
    errors = {r["line"]: r for r in records if r["verdict"] == "error"}
    assert {line: r["error"]["field"] for line, r in errors.items()} == {
        2: "<line>",
        3: "completion",
        4: "completion",
        5: "<line>",
        6: "id",
        7: "task",
        8: "colour",
        9: "<line>",
    }
    assert all(r["reward"] is None for r in errors.values())
    assert "line 1" in errors[6]["error"]["message"]
    assert "blank line" in errors[5]["error"]["message"]
    assert "nosuchtask" in errors[7]["error"]["message"]
    assert records[0]["reward"] == 1.0 and records[-1]["reward"] == 0.0


def test_unknown_verifier_is_a_usage_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out.jsonl"
    assert main(["score", "--input", str(EXAMPLES), "--output", str(out), "--verifier", "fromat"]) == 2
    assert "'fromat'" in capsys.readouterr().err
    assert not out.exists()


def test_unreadable_input_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["score", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o")]) == 1
    assert "missing.jsonl" in capsys.readouterr().err


def test_routing_file_picks_verifiers_and_weights(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text("tasks:\n  math: {format: 2.0, tag_count: 0.5}\n")
    src = _write(tmp_path / "in.jsonl", [{"id": "x", "task": "math", "completion": "<think>x</think>"}])
    out = tmp_path / "out.jsonl"
    assert main(["score", "--input", str(src), "--output", str(out), "--routing", str(routing)]) == 0
    (record,) = _read(out)
    assert set(record["components"]) == {"format", "tag_count"}
    assert record["reward"] == pytest.approx(2.0 * 0.0 + 0.5 * 0.5)
    assert record["verdict"] == "incorrect"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("tasks:\n  math: {nosuch: 1.0}\n", "'nosuch'"),
        ("tasks: [1]\n", "--routing"),
        ("routes: {}\n", "tasks"),
        ("tasks: {math: [\n", "--routing"),
    ],
)
def test_bad_routing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture, yaml_text, message) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(yaml_text)
    args = ["score", "--input", str(EXAMPLES), "--output", str(tmp_path / "o"), "--routing", str(routing)]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_workers_give_the_same_output_in_the_same_order(tmp_path: Path) -> None:
    outputs = []
    for workers in ("1", "4"):
        out = tmp_path / f"out{workers}.jsonl"
        args = ["score", "--input", str(EXAMPLES), "--output", str(out), "--verifier", "language", "--workers", workers]
        assert main(args) == 0
        outputs.append(_without_timing(_read(out)))
    assert outputs[0] == outputs[1]


def test_zero_workers_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["score", "--input", str(EXAMPLES), "--output", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_score_file_takes_any_scorer_backend() -> None:
    def format_only(samples: Iterable[Sample]) -> Iterator[ScoredSample]:
        verifier = default_registry().get("format")
        for sample in samples:
            result = verifier.score(sample)
            yield ScoredSample(sample.id, result.score, result.verdict, {"format": result})

    lines = [json.dumps({"id": "a", "task": "any", "completion": GOOD}), "oops", json.dumps({"id": "b", "task": "any"})]
    out = io.StringIO()
    summary = score_file(lines, out, format_only)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["id"], r["verdict"]) for r in records] == [("a", "correct"), (None, "error"), ("b", "error")]
    assert summary.verdicts == {"correct": 1, "error": 2}


def test_a_scorer_answering_out_of_order_is_caught() -> None:
    def backwards(samples: Iterable[Sample]) -> Iterator[ScoredSample]:
        for sample in reversed(list(samples)):
            yield ScoredSample(sample.id, 1.0, VerifierResult.correct().verdict)

    lines = [json.dumps({"id": i, "task": "t", "completion": "c"}) for i in ("a", "b")]
    with pytest.raises(RuntimeError, match="out of input order"):
        score_file(lines, io.StringIO(), backwards)


def test_local_scorer_keeps_order_under_concurrency() -> None:
    samples = [Sample(id=str(i), task="format", completion=GOOD if i % 3 else "bad") for i in range(50)]
    results = list(LocalScorer(workers=4)(samples))
    assert [r.id for r in results] == [s.id for s in samples]
    assert [r.reward for r in results] == [1.0 if i % 3 else 0.0 for i in range(50)]


def test_a_verifier_that_cannot_load_stops_the_run_with_its_name() -> None:
    registry = Registry(include_plugins=False)
    registry.add("broken", lambda: importlib.import_module("rewards.no_such_module").Verifier())
    scorer = LocalScorer(registry=registry, only="broken")
    with pytest.raises(VerifierLoadError, match=r"'broken'.*ModuleNotFoundError"):
        list(scorer([Sample(id="a", task="format", completion=GOOD)]))


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile([3.0], 99) == 3.0


def test_default_routing_scores_math_examples_with_math_and_format(tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--input", str(EXAMPLES), "--output", str(out), "--workers", "2"]) == 0
    records = {r["id"]: r for r in _read(out)}
    assert len(records) == 36
    for sample_id in ("m01", "m02", "m03", "m04", "m05"):  # right, equivalent forms included
        assert records[sample_id]["verdict"] == "correct" and records[sample_id]["reward"] == 2.0, sample_id
    assert records["m06"]["verdict"] == "incorrect" and records["m06"]["reward"] == 1.0  # wrong, well-formed
    assert records["m08"]["components"]["format"]["score"] == 0.0  # right answer, no template
    assert records["m17"]["components"]["math"]["verdict"] == "not_applicable"  # unparseable gold


def test_blank_lines_each_get_an_error_record(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "task": "format", "completion": GOOD}) + "\n\n   \n"
                   + json.dumps({"id": "b", "task": "format", "completion": GOOD}) + "\n\n")
    out = tmp_path / "out.jsonl"
    assert main(["score", "--input", str(src), "--output", str(out)]) == 0
    records = _read(out)
    assert len(records) == len(src.read_text().splitlines()) == 5
    assert [(r["id"], r.get("line")) for r in records] == [("a", None), (None, 2), (None, 3), ("b", None), (None, 5)]
    assert all(r["error"]["field"] == "<line>" for r in records if r["id"] is None)


def test_numeric_answers_are_read_as_written(tmp_path: Path) -> None:
    lines = ['{"id": "int", "task": "math", "completion": "<answer>4</answer>", "answer": 4}',
             '{"id": "frac", "task": "math", "completion": "<answer>0.50</answer>", "answer": 0.50}',
             '{"id": "neg", "task": "math", "completion": "<answer>-2.5</answer>", "answer": -2.5}',
             '{"id": "bool", "task": "math", "completion": "<answer>4</answer>", "answer": true}']
    src = _write(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    assert main(["score", "--input", str(src), "--output", str(out), "--verifier", "math"]) == 0
    records = {r["id"]: r for r in _read(out)}
    assert [records[i]["verdict"] for i in ("int", "frac", "neg")] == ["correct"] * 3
    assert records["bool"]["error"] == {"field": "answer", "message": "expected a string or a number, got bool"}


@pytest.mark.parametrize("literal", ["4", "-7", "0.50", "1e3", "2.5E-4", "123456789012345678901234567890"])
def test_numbers_keep_their_written_text_and_their_value(literal: str) -> None:
    from arbiter.score import _parse_lines

    line = f'{{"id": "a", "task": "t", "completion": "c", "answer": {literal}, "limits": {{"t": 1.5}}}}'
    (parsed,) = _parse_lines([line])
    assert parsed.sample.answer == literal
    assert parsed.sample.limits == {"t": 1.5} and json.dumps(parsed.sample.limits) == '{"t": 1.5}'
def test_audit_flag_is_refused_for_an_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inp = _write(tmp_path / "in.jsonl", [{"id": "1", "task": "math", "completion": GOOD, "answer": "5"}])
    argv = ["score", "--input", str(inp), "--output", str(tmp_path / "o.jsonl"), "--endpoint", "127.0.0.1:1",
            "--audit", "0.5"]
    assert main(argv) == 2
    assert "math.audit_fraction" in capsys.readouterr().err
