"""Standard-input/standard-output tests: run the program once per case and compare outputs.

The comparison is done here, in the trusted process, on the program's captured stdout: all
lines must match, token by token after whitespace normalisation (so neither a correct prefix
nor extra lines pass), with an optional numeric tolerance per token. A special judge
(checker.py) replaces the comparison when the sample brings one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.api import Limits, RunRequest, Status
from sandbox.grading.checker import Checker, Runner, run_checker
from sandbox.grading.result import GradeReport, GradingFault, Outcome, TestOutcome

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_RUN_OUTCOME = {
    Status.TIME_LIMIT: Outcome.TIME_LIMIT,
    Status.MEMORY_LIMIT: Outcome.MEMORY_LIMIT,
    Status.OUTPUT_LIMIT: Outcome.OUTPUT_LIMIT,
    Status.RUNTIME_ERROR: Outcome.RUNTIME_ERROR,
}


@dataclass(frozen=True)
class FloatTolerance:
    """A numeric token matches when within `abs_tol` OR within `rel_tol` of the expected value."""

    abs_tol: float = 0.0
    rel_tol: float = 0.0

    def __post_init__(self) -> None:
        for name in ("abs_tol", "rel_tol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0")


@dataclass(frozen=True)
class StdioCase:
    stdin: str
    stdout: str


def _lines(text: str) -> list[list[str]]:
    lines = [line.split() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _tokens_match(expected: str, actual: str, tolerance: FloatTolerance | None) -> bool:
    if expected == actual:
        return True
    if tolerance is None or not _NUMBER.fullmatch(expected) or not _NUMBER.fullmatch(actual):
        return False
    want, got = float(expected), float(actual)
    return abs(got - want) <= max(tolerance.abs_tol, tolerance.rel_tol * abs(want))


def outputs_match(expected: str, actual: str, tolerance: FloatTolerance | None = None) -> tuple[bool, str]:
    """(match, reason): every line must match; trailing spaces and trailing blank lines are ignored."""
    want, got = _lines(expected), _lines(actual)
    for number, (w, g) in enumerate(zip(want, got, strict=False), start=1):
        if len(w) != len(g) or not all(_tokens_match(a, b, tolerance) for a, b in zip(w, g, strict=True)):
            return False, f"line {number} differs: expected {' '.join(w)[:80]!r}, got {' '.join(g)[:80]!r}"
    if len(want) != len(got):
        return False, f"expected {len(want)} lines, got {len(got)}"
    return True, ""


def grade_stdio(language: str, code: str, cases: Sequence[StdioCase], run: Runner, limits: Limits,
                tolerance: FloatTolerance | None = None, checker: Checker | None = None,
                stop_at_first_failure: bool = False) -> GradeReport:
    """Run `code` on each case's stdin in the sandbox and judge its stdout."""
    outcomes: list[TestOutcome] = []
    for index, case in enumerate(cases):
        if stop_at_first_failure and outcomes and not outcomes[-1].passed:
            outcomes.extend(TestOutcome(i, Outcome.SKIPPED, "not run after a failure")
                            for i in range(index, len(cases)))
            break
        result = run(RunRequest(language=language, source=code, stdin=case.stdin, limits=limits))
        if result.status is Status.SANDBOX_ERROR:
            raise GradingFault(f"sandbox fault: {result.detail or result.stderr[-300:]}")
        if result.status is Status.COMPILE_ERROR:
            message = (result.stderr.strip() or result.detail)[-500:] or "compilation failed"
            failed = tuple(TestOutcome(i, Outcome.FAILED, "compile error") for i in range(len(cases)))
            return GradeReport(failed, compile_error=message)
        seen = {"time_s": result.wall_time_s, "input": case.stdin, "expected": case.stdout,
                "actual": result.stdout, "stderr": result.stderr}
        if result.status is not Status.OK:
            why = result.detail or (f"signal {result.signal}" if result.signal else f"exit code {result.exit_code}")
            outcomes.append(TestOutcome.judged(index, _RUN_OUTCOME[result.status], why, **seen))
            continue
        if checker is not None:
            ok, reason = run_checker(checker, case.stdin, case.stdout, result.stdout, run)
        else:
            ok, reason = outputs_match(case.stdout, result.stdout, tolerance)
        outcomes.append(TestOutcome.judged(index, Outcome.PASSED if ok else Outcome.FAILED, reason, **seen))
    return GradeReport(tuple(outcomes))
