"""Special judges: a checker program, run in its own sandbox, decides whether an output is right.

The checker gets three files in its working directory, `input.txt` (the test's stdin),
`expected.txt` (the reference output) and `output.txt` (the contestant's output), and answers
with its exit code: 0 accepted, 1 rejected (its first stdout line says why). Any other end
(another exit code, a crash, a time-out) is a fault of the checker, never a verdict on the
contestant. The contestant's output reaches it only as a file: data, not code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandbox.api import Limits, RunRequest, RunResult, Status
from sandbox.grading.result import GradingFault

Runner = Callable[[RunRequest], RunResult]

ACCEPTED = 0
REJECTED = 1
CHECKER_LIMITS = Limits(wall_time_s=10.0, cpu_time_s=10.0)


@dataclass(frozen=True)
class Checker:
    language: str
    source: str
    limits: Limits = CHECKER_LIMITS


def run_checker(checker: Checker, stdin: str, expected: str, output: str, run: Runner) -> tuple[bool, str]:
    """(accepted, reason) for one test; raises GradingFault when the checker itself fails."""
    result = run(RunRequest(
        language=checker.language,
        source=checker.source,
        limits=checker.limits,
        files={"input.txt": stdin, "expected.txt": expected, "output.txt": output},
    ))
    reason = result.stdout.strip().splitlines()[0][:300] if result.stdout.strip() else ""
    if result.status in (Status.OK, Status.RUNTIME_ERROR) and result.signal is None:
        if result.exit_code == ACCEPTED:
            return True, reason
        if result.exit_code == REJECTED:
            return False, reason or "rejected by the checker"
    raise GradingFault(
        f"checker failed ({result.status.value}, exit code {result.exit_code}): "
        f"{(result.detail or result.stderr)[-300:]}"
    )
