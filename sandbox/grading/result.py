"""Per-test outcomes of one grading run, and the fraction passed."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sandbox.api import encodable

# Each diagnostic text of a failed test (its input, expected and actual output, stderr tail) is
# cut to this many characters: enough to debug with, small enough for a batch of 64 replies.
DIAGNOSTIC_CAP_CHARS = 1000


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


def capped(text: str, *, tail: bool = False, cap: int = DIAGNOSTIC_CAP_CHARS) -> str:
    """`text` made encodable and cut to `cap` characters (its end when `tail`), the cut marked."""
    text = encodable(text)
    if len(text) <= cap:
        return text
    return "..." + text[-cap:] if tail else text[:cap] + "..."


@dataclass(frozen=True)
class TestOutcome:
    """One test: its outcome and time; for a failure what it was given, what was expected, what
    came out and the end of stderr (each capped, empty where the kind of test has none)."""

    index: int
    outcome: Outcome
    detail: str = ""
    time_s: float | None = None
    input: str = ""
    expected: str = ""
    actual: str = ""
    stderr_tail: str = ""

    @classmethod
    def judged(cls, index: int, outcome: Outcome, detail: str = "", *, time_s: float | None = None,
               input: str = "", expected: str = "", actual: str = "", stderr: str = "") -> TestOutcome:
        """An outcome with its diagnostics capped; a passed test keeps only its time."""
        if outcome is Outcome.PASSED:
            return cls(index, outcome, detail, time_s)
        return cls(index, outcome, capped(detail), time_s, capped(input), capped(expected), capped(actual),
                   capped(stderr, tail=True))

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"test": self.index, "status": self.outcome.value}
        if self.time_s is not None:
            record["time_s"] = round(self.time_s, 4)
        for name in ("detail", "input", "expected", "actual", "stderr_tail"):
            if getattr(self, name):
                record[name] = getattr(self, name)
        return record


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
