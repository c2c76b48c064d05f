"""examples/code_samples.jsonl, scored with the default routing: each gets its documented reward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards.compose import score_sample
from rewards.types import Sample

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "code_samples.jsonl"
LINES = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("raw", LINES, ids=[raw["id"] for raw in LINES])
def test_example_gets_its_expected_reward(raw):
    scored = score_sample(Sample.from_dict(raw))
    expected = raw["metadata"]
    assert scored.verdict.value == expected["expected_verdict"], scored.to_record()
    assert scored.reward == pytest.approx(expected["expected_reward"]), scored.to_record()
