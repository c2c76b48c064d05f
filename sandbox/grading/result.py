"""Per-test outcomes of one grading run, and the fraction passed."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"  # wrong answer or failed assertion
    RUNTIME_ERROR = "runtime_error"
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    SKIPPED = "skipped"  # not run after an earlier failure (stop at first failure)


class GradingFault(RuntimeError):
    """The grading machinery failed (sandbox fault, harness bug, broken checker): not a verdict."""


@dataclass(frozen=True)
class TestOutcome:
    index: int
    outcome: Outcome
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


@dataclass(frozen=True)
class GradeReport:
    """What came of running one program against all of its tests.

    `compile_error` is set when the program never ran (it failed to compile or to load);
    then no test passed.
    """

    outcomes: tuple[TestOutcome, ...]
    compile_error: str | None = None

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total

    def summary(self) -> str:
        """One line for a verdict's detail: the count, then the first failure's reason."""
        if self.compile_error is not None:
            return f"did not compile or load: {self.compile_error}"
        text = f"{self.passed}/{self.total} tests passed"
        first = next((o for o in self.outcomes if not o.passed), None)
        if first is not None:
            reason = f"{first.outcome.value}: {first.detail}" if first.detail else first.outcome.value
            text += f"; test {first.index}: {reason}"
        return text[:500]
