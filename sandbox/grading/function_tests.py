"""Function-call tests (HumanEval `check(candidate)` or MBPP assertion lines), graded honestly.

The candidate's module runs in a child process of the trusted referee harness, inside the
sandbox; the tests run in the referee, which calls the candidate's functions through a pipe
and receives their results as strictly decoded builtin values (harness/referee.py says why
each step is there). The verdict is the referee's report on the sandbox's private result pipe,
authenticated by a per-run nonce: never the program's exit code, never its stdout.
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.api import Limits, RunRequest, RunResult, Status, encodable
from sandbox.grading.checker import Runner
from sandbox.grading.harness import MODULES
from sandbox.grading.result import GradeReport, GradingFault, Outcome, TestOutcome

# Interpreter start-up of referee and contestant, on top of the per-test time.
STARTUP_ALLOWANCE_S = 5.0
STARTED_MARKER = "ARBITER-REFEREE-STARTED"
ERROR_MARKER = "ARBITER-REFEREE-ERROR "


def _with_bytecode(modules: dict[str, str]) -> dict[str, str | bytes]:
    """The harness modules plus their bytecode, so that no run pays for compiling them (3-5 ms here).

    Checked hash-based .pyc files (PEP 552): the jail's interpreter uses one only if its magic
    number and cache tag match its own and the hash of the source next to it agrees; otherwise
    it compiles the source, as without them.
    """
    files: dict[str, str | bytes] = dict(modules)
    for name, source in modules.items():
        data = source.encode()
        code = compile(data, name, "exec", dont_inherit=True)
        pyc = (importlib.util.MAGIC_NUMBER + struct.pack("<I", 0b11) + importlib.util.source_hash(data)
               + marshal.dumps(code))
        files[importlib.util.cache_from_source(name)] = pyc
    return files


# The main program only imports the referee: a main file is always compiled from source, an
# imported module's bytecode comes from its .pyc (or, in a warm jail, the module is already there).
REFEREE_SOURCE = "import arbiter_referee\n\narbiter_referee.main()\n"
HARNESS_FILES = _with_bytecode({f"{name}.py": source for name, source in MODULES.items()})

_STATUS = {
    "passed": Outcome.PASSED,
    "failed": Outcome.FAILED,
    "error": Outcome.RUNTIME_ERROR,
    "crashed": Outcome.RUNTIME_ERROR,
    "time_limit": Outcome.TIME_LIMIT,
    "skipped": Outcome.SKIPPED,
    "load_error": Outcome.RUNTIME_ERROR,
}
_RUN_END = {Status.TIME_LIMIT: Outcome.TIME_LIMIT, Status.MEMORY_LIMIT: Outcome.MEMORY_LIMIT,
            Status.OUTPUT_LIMIT: Outcome.OUTPUT_LIMIT}


@dataclass(frozen=True)
class FunctionTestSpec:
    """Statements run as tests in the referee, each one test; a test passes if it returns normally.

    `setup` runs first in the same namespace (HumanEval's test source defining `check`, or
    imports); `entry_point` is the candidate's function bound to the name `candidate`. Any other
    name the tests use that is neither a builtin nor defined by the setup is the candidate's
    function of that name (MBPP's `assert remove_Occ("hello", "l") == "heo"`).
    """

    tests: tuple[str, ...]
    setup: str = ""
    entry_point: str | None = None

    def __post_init__(self) -> None:
        if not self.tests:
            raise ValueError("tests: at least one test is needed")
        # compile() parses without running anything: a malformed test is the sample's fault.
        compile(self.setup, "<setup>", "exec")
        for index, test in enumerate(self.tests):
            try:
                compile(test, f"<test {index}>", "exec")
            except SyntaxError as exc:
                raise SyntaxError(f"test {index} does not compile: {exc.msg}") from None

    @classmethod
    def humaneval(cls, test_source: str, entry_point: str) -> FunctionTestSpec:
        """HumanEval's form: `test_source` defines check(candidate); one test."""
        return cls(tests=("check(candidate)",), setup=test_source, entry_point=entry_point)

    @classmethod
    def assertions(cls, lines: Sequence[str], setup: str = "", entry_point: str | None = None) -> FunctionTestSpec:
        """MBPP's form: each assertion line is one test, for partial credit."""
        return cls(tests=tuple(lines), setup=setup, entry_point=entry_point)


def function_test_limits(spec: FunctionTestSpec, time_s: float, memory_mib: int) -> Limits:
    """The run's limits: every test's time plus the interpreters' start-up, in one run."""
    total_s = time_s * len(spec.tests) + STARTUP_ALLOWANCE_S
    return Limits(wall_time_s=total_s, cpu_time_s=total_s, memory_mib=memory_mib)


def build_request(code: str, spec: FunctionTestSpec, nonce: str, time_s: float, memory_mib: int,
                  stop_at_first_failure: bool) -> RunRequest:
    stdin = json.dumps({
        "nonce": nonce,
        "setup": spec.setup,
        "tests": list(spec.tests),
        "entry_point": spec.entry_point,
        "time_s": time_s,
        "stop_at_first_failure": stop_at_first_failure,
    })
    return RunRequest(
        language="python",
        source=REFEREE_SOURCE,
        stdin=stdin,
        limits=function_test_limits(spec, time_s, memory_mib),
        files={**HARNESS_FILES, "candidate.py": code},
        result_fd=True,
    )


def parse_report(result: RunResult, nonce: str, tests: Sequence[str]) -> GradeReport:
    """Turn the referee's nonce-prefixed records into per-test outcomes."""
    if result.status is Status.SANDBOX_ERROR:
        raise GradingFault(f"sandbox fault: {result.detail or result.stderr[-500:]}")
    lines = (result.result_bytes or b"").decode("utf-8", "replace").splitlines()
    if STARTED_MARKER not in lines[:1]:
        raise GradingFault(f"the grading harness did not start ({result.status.value}): {result.stderr[-500:]}")
    prefix = nonce + " "
    by_index: dict[int, dict] = {}
    for line in lines[1:]:
        if line.startswith(ERROR_MARKER):
            raise GradingFault(f"grading harness error: {encodable(json.loads(line[len(ERROR_MARKER):]))[-500:]}")
        if not line.startswith(prefix):
            continue
        record = json.loads(line[len(prefix):])
        # The detail quotes the candidate (its exception's class name and text, its values), which
        # JSON's \u escapes carry even when no encoder can write them (a lone surrogate).
        record["detail"] = encodable(record["detail"])
        index = record["test"]
        if index in by_index or not 0 <= index < len(tests):
            raise GradingFault(f"report channel tampered with: unexpected record for test {index}")
        by_index[index] = record
    unsupported = [r["detail"] for r in by_index.values() if r["status"] == "unsupported"]
    if unsupported:
        raise GradingFault(f"the tests cannot be run: {unsupported[0]}")
    load_errors = [r["detail"] for r in by_index.values() if r["status"] == "load_error"]
    ended = _RUN_END.get(result.status, Outcome.RUNTIME_ERROR)
    outcomes = []
    for index in range(len(tests)):
        record = by_index.get(index)
        if record is None:  # the referee was stopped: killed by the candidate, or a limit of the run
            outcomes.append(TestOutcome(index, ended, f"no outcome: the run ended with {result.status.value}"))
        else:
            outcomes.append(TestOutcome.judged(
                index, _STATUS[record["status"]], record["detail"], time_s=record.get("time_s"),
                input=tests[index], expected=record.get("expected", ""), actual=record.get("actual", ""),
                stderr=result.stderr))
    return GradeReport(tuple(outcomes), compile_error=load_errors[0] if load_errors else None)


def grade_function_tests(code: str, spec: FunctionTestSpec, run: Runner, time_s: float = 5.0,
                         memory_mib: int = 512, stop_at_first_failure: bool = False) -> GradeReport:
    """Grade `code` (a Python module) against `spec`; `run` executes one request in a sandbox."""
    nonce = secrets.token_hex(16)
    result = run(build_request(code, spec, nonce, time_s, memory_mib, stop_at_first_failure))
    return parse_report(result, nonce, spec.tests)
