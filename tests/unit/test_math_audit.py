"""The math verifier's second opinion, its memo and its exact fast path, as `score` uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arbiter.cli import main
from arbiter.config import ConfigError, from_dict
from rewards.math import MathConfig, MathVerifier
from rewards.types import Sample, Verdict

THINK = "<think>\nwork\n</think>\n"


def sample(answer: str, gold: str, n: int = 0) -> Sample:
    return Sample(id=str(n), task="math", completion=f"{THINK}<answer>{answer}</answer>", answer=gold)


@pytest.fixture
def verifier_factory():
    made: list[MathVerifier] = []

    def make(**config) -> MathVerifier:
        made.append(MathVerifier(MathConfig(**{"timeout_s": 30, "workers": 1, **config})))
        return made[-1]

    yield make
    for v in made:
        v.close()


def test_audit_records_plain_math_verify_beside_an_unchanged_verdict(verifier_factory) -> None:
    audited, unaudited = verifier_factory(audit_fraction=1.0), verifier_factory(audit_fraction=0.0)
    # 0.\overline{6} is 2/3 for Arbiter; plain Math-Verify cannot read the overline
    for answer, audit in (("\\frac{4}{6}", Verdict.CORRECT), ("0.\\overline{6}", Verdict.INCORRECT)):
        result = audited.score(sample(answer, "\\frac{2}{3}"))
        assert (result.verdict, result.audit) == (Verdict.CORRECT, audit)
        assert result.audit_disagrees is (audit is Verdict.INCORRECT)
        assert unaudited.score(sample(answer, "\\frac{2}{3}")) == result.__class__(
            result.verdict, result.score, result.detail, result.answer)


def test_audit_share_is_about_the_fraction_and_stable_per_pair(verifier_factory) -> None:
    verifier = verifier_factory(audit_fraction=0.25)
    chosen = [verifier._audited("7", str(n)) for n in range(2000)]
    assert 0.2 < sum(chosen) / len(chosen) < 0.3
    assert chosen == [verifier._audited("7", str(n)) for n in range(2000)]


def test_group_of_16_completions_with_4_distinct_answers_costs_4_verifications(verifier_factory) -> None:
    verifier = verifier_factory(audit_fraction=0.0)
    answers = ["\\frac{1}{2}", "0.5", "**\\frac{1}{2}**", "\\sqrt{2}/2"] * 4  # the third reads as the first
    verdicts = [verifier.score(sample(a, "\\frac{1}{2}", n)).verdict for n, a in enumerate(answers)]
    assert verdicts == [Verdict.CORRECT, Verdict.CORRECT, Verdict.CORRECT, Verdict.INCORRECT] * 4
    assert verifier.verifications == 3


def test_plain_numbers_are_judged_exactly_without_starting_a_worker(verifier_factory) -> None:
    verifier = verifier_factory(audit_fraction=0.0)
    for answer, gold, verdict in (("42", "42", Verdict.CORRECT), ("\\frac{3}{6}", "0.5", Verdict.CORRECT),
                                  ("7,425,000", "7425000", Verdict.CORRECT), ("41", "42", Verdict.INCORRECT),
                                  ("2/3", "\\frac{2}{3}", Verdict.CORRECT), ("28\\%", "0.28", Verdict.CORRECT)):
        assert verifier.score(sample(answer, gold)).verdict is verdict, (answer, gold)
    assert verifier.worker_pids() == []


def test_faults_are_never_remembered(verifier_factory) -> None:
    verifier = verifier_factory(audit_fraction=0.0, timeout_s=0.5)
    tower = "9^{9^{9^{9^{9}}}}"
    assert verifier.score(sample(tower, "5")).verdict is Verdict.TIMEOUT
    assert verifier.score(sample(tower, "5")).verdict is Verdict.TIMEOUT
    assert verifier.verifications == 2


@pytest.mark.parametrize("raw", [{"audit_fraction": 1.5}, {"audit_fraction": -0.1}, {"memo_entries": -1}])
def test_bad_audit_or_memo_settings_are_rejected(raw: dict) -> None:
    with pytest.raises((ConfigError, ValueError)):
        from_dict(MathConfig, raw)


def test_score_cli_rejects_an_audit_fraction_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "1", "task": "math", "completion": "x", "answer": "1"}) + "\n")
    assert main(["score", "--input", str(inp), "--output", str(tmp_path / "o.jsonl"), "--audit", "2"]) == 2
    assert "--audit" in capsys.readouterr().err


def test_score_cli_writes_disputed_samples_beside_the_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inp = tmp_path / "in.jsonl"
    rows = [("a", "0.\\overline{6}", "\\frac{2}{3}"), ("b", "\\frac{4}{6}", "\\frac{2}{3}"), ("c", "5", "4")]
    inp.write_text("".join(json.dumps({"id": i, "task": "math", "completion": f"{THINK}<answer>{a}</answer>",
                                       "answer": g}) + "\n" for i, a, g in rows))
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--input", str(inp), "--output", str(out), "--verifier", "math", "--audit", "1"]) == 0
    assert "audit: 1 disagreements in 3 audited samples" in capsys.readouterr().err
    (disputed,) = [json.loads(line) for line in (tmp_path / "scores.audit.jsonl").read_text().splitlines()]
    assert (disputed["id"], disputed["verdict"], disputed["audit"]) == ("a", "correct", "incorrect")
    assert (disputed["gold"], disputed["answer"]) == ("\\frac{2}{3}", "0.\\overline{6}")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["components"]["math"]["audit"] for r in records] == ["incorrect", "correct", "incorrect"]
