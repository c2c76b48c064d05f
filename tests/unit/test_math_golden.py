"""Golden tables: equivalences the math verifier must accept or reject, and false positives it must not repeat.

Each row: gold, completion (a full R1 completion) or prediction (an extracted answer),
expected verdict, and class. To add a case, add a line; the test id names file, line and class.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards.math import MathVerifier
from rewards.types import Sample

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FILES = ("math_equivalences.jsonl", "math_r1_classes.jsonl", "math_false_positives.jsonl")
ROWS = [
    pytest.param(row, id=f"{name.removesuffix('.jsonl')}:{n}:{row['class']}")
    for name in FILES
    for n, line in enumerate((GOLDEN / name).read_text().splitlines(), start=1)
    for row in [json.loads(line)]
]


def test_golden_tables_are_well_formed() -> None:
    assert len(ROWS) >= 100
    for param in ROWS:
        (row,) = param.values
        assert set(row) in ({"class", "gold", "completion", "expected"}, {"class", "gold", "prediction", "expected"})


@pytest.mark.parametrize("row", ROWS)
def test_golden_row_gets_its_expected_verdict(math_verifier: MathVerifier, row: dict[str, str]) -> None:
    if "completion" in row:
        result = math_verifier.score(Sample(id="golden", task="math", completion=row["completion"], answer=row["gold"]))
    else:
        result = math_verifier.compare(row["gold"], row["prediction"])
    assert result.verdict.value == row["expected"], result.detail
