"""Conformance with Math-Verify's own test tables (270 rows, vendored in tests/conformance).

Each row is run through our comparison (the worker's parse + verify + re-checks), honouring
the row's extraction targets and precision as Math-Verify's suite did. Agreement must be at
least 97%, and every disagreement must be listed below with its reason.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rewards.math import MathConfig, MathVerifier
from rewards.types import Verdict

_DEFAULT_CASES_DIR = Path(__file__).resolve().parents[1] / "conformance"
CASES = Path(os.environ.get("ARBITER_CONFORMANCE_DIR", _DEFAULT_CASES_DIR)) / "math_verify_cases.jsonl"

DELIBERATE_DISAGREEMENTS = {
    "mv-0277": "upstream labels 1-1/e equal to 1+1/e: its normalizer drops a trailing \\mathrm{e} as a unit "
    "and the number scraper then finds 1 in both; we read \\mathrm{e} as e",
    "mv-0236": "the gold (x = 1/2, x = (-1 ± √13)/4) does not parse (±); upstream matches the two identical "
    "unparsed strings, we report an unparseable gold as not applicable",
}


def _rows() -> list[dict]:
    if not CASES.exists():
        pytest.skip(f"conformance table not found at {CASES} (set ARBITER_CONFORMANCE_DIR)")
    return [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]


def test_agrees_with_math_verify_suite_except_listed_rows() -> None:
    rows = _rows()
    # A generous deadline: this test is about judgements, and CI cores are shared.
    verifier = MathVerifier(MathConfig(workers=2, timeout_s=60))
    try:

        def judged_correct(row: dict) -> bool:
            config = row["config"]
            result = verifier.compare(
                row["gold"],
                row["prediction"],
                targets=tuple(config["extraction"]),
                float_rounding=config["precision"],
                strict=config["strict"],
                allow_set_relation_comp=config["allow_set_relation_comp"],
            )
            assert not result.verdict.is_fault, f"{row['id']}: {result.detail}"
            return result.verdict is Verdict.CORRECT

        with ThreadPoolExecutor(max_workers=2) as threads:  # one thread per worker
            got = dict(zip((r["id"] for r in rows), threads.map(judged_correct, rows), strict=True))
    finally:
        verifier.close()

    disagreeing = {r["id"] for r in rows if got[r["id"]] != r["expected"]}
    unlisted = sorted(disagreeing - set(DELIBERATE_DISAGREEMENTS))
    assert not unlisted, f"rows disagreeing with Math-Verify without a listed reason: {unlisted}"
    stale = sorted(set(DELIBERATE_DISAGREEMENTS) - disagreeing)
    assert not stale, f"listed disagreements that now agree (remove them from the table): {stale}"
    assert 1 - len(disagreeing) / len(rows) >= 0.97
