"""Honest graders on top of the sandbox: function-call tests, stdin/stdout tests, special judges.

Every grader takes a `run(RunRequest) -> RunResult` callable (a warm sandbox's `run`) and
returns a GradeReport of per-test outcomes; a fault of the machinery raises GradingFault.
"""

from sandbox.grading.checker import Checker
from sandbox.grading.function_tests import FunctionTestSpec, function_test_limits, grade_function_tests
from sandbox.grading.result import GradeReport, GradingFault, Outcome, TestOutcome
from sandbox.grading.stdio import FloatTolerance, StdioCase, grade_stdio, outputs_match

__all__ = [
    "Checker",
    "FloatTolerance",
    "FunctionTestSpec",
    "GradeReport",
    "GradingFault",
    "Outcome",
    "StdioCase",
    "TestOutcome",
    "function_test_limits",
    "grade_function_tests",
    "grade_stdio",
    "outputs_match",
]
