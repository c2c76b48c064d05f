"""The `code` verifier: the completion's final fenced code block, graded by the sample's tests.

Sample fields used (see README, "Code"):
  language  "python" | "cpp" | "c" | "rust" | "go" | "javascript" | "java" (else the fence tag
            decides; python by default); one whose toolchain this host lacks is ERROR, never 0
  tests     {"kind": "assert", "entry_point": NAME, "test": SOURCE,        HumanEval: SOURCE defines
             "setup": PROMPT?}                                             check(candidate); 1 test
            {"kind": "assert", "test": [LINE, ...], "setup": SOURCE?}      MBPP: each line one test
            (`setup` runs in the trusted referee before the tests: imports, the prompt's helpers)
            {"kind": "stdio", "cases": [{"stdin": S, "stdout": S}, ...],
             "float_tolerance": null | TOL | {"abs": TOL, "rel": TOL}, "checker": {"language", "source"}?}
  limits    {"time_s": per test, "memory_mib": per run}, both optional

Reward: the fraction of tests passed (or 0/1 with `binary`). No code block is NO_ANSWER; a
program that does not compile or load scores 0; a sandbox or harness fault is ERROR (score None),
never 0; a test that runs out of time is a failed test. Grading is honest: see
sandbox/grading/harness/referee.py for why exits, patches, fake output and rigged objects fail.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from typing import Any

from rewards.types import Sample, SampleError, VerifierResult
from sandbox import Sandbox, default_sandbox, provenance
from sandbox.api import Limits
from sandbox.grading import (
    Checker,
    FloatTolerance,
    FunctionTestSpec,
    GradeReport,
    GradingFault,
    StdioCase,
    function_test_limits,
    grade_function_tests,
    grade_stdio,
)
from sandbox.languages import LANGUAGES as SANDBOX_LANGUAGES
from sandbox.languages import get_language

LANGUAGE_ALIASES = {
    "python": "python", "py": "python", "python3": "python",
    "cpp": "cpp", "c++": "cpp", "cc": "cpp", "cxx": "cpp",
    "c": "c",
    "rust": "rust", "rs": "rust",
    "go": "go", "golang": "go",
    "javascript": "javascript", "js": "javascript", "node": "javascript", "nodejs": "javascript",
    "java": "java",
}
LANGUAGES = tuple(SANDBOX_LANGUAGES)
# One set of bounds for CodeConfig and a sample's `limits`, so the two cannot drift apart.
MAX_TIME_S = 60
MIN_MEMORY_MIB, MAX_MEMORY_MIB = 16, 8192


@dataclass(frozen=True)
class CodeConfig:
    binary: bool = False
    """Reward 1.0 only when every test passes, else 0.0 (instead of the fraction passed)."""
    stop_at_first_failure: bool = False
    """Skip the remaining tests after the first failure (faster; with partial credit, lower)."""
    time_s: float = 5.0
    """Per test, unless the sample's limits.time_s says otherwise; HumanEval's harness uses 3 s."""
    memory_mib: int = 512
    """Per run, unless the sample's limits.memory_mib says otherwise."""

    def __post_init__(self) -> None:
        if not (isinstance(self.time_s, (int, float)) and 0 < self.time_s <= MAX_TIME_S):
            raise ValueError(f"CodeConfig.time_s must be in (0, {MAX_TIME_S}]")
        if not (isinstance(self.memory_mib, int) and MIN_MEMORY_MIB <= self.memory_mib <= MAX_MEMORY_MIB):
            raise ValueError(f"CodeConfig.memory_mib must be an integer in [{MIN_MEMORY_MIB}, {MAX_MEMORY_MIB}]")


@dataclass(frozen=True)
class CodeBlock:
    tag: str
    code: str


@dataclass(frozen=True)
class StdioSpec:
    cases: tuple[StdioCase, ...]
    tolerance: FloatTolerance | None = None
    checker: Checker | None = None


def fenced_blocks(text: str) -> list[CodeBlock]:
    """Every closed ``` block, in order; an unclosed block (a cut-off completion) is not one."""
    blocks = []
    tag: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if tag is None:
            if stripped.startswith("```"):
                tag, body = stripped[3:].strip().lower(), []
        elif stripped == "```":
            blocks.append(CodeBlock(tag, "\n".join(body) + "\n"))
            tag = None
        else:
            body.append(line)
    return blocks


def extract_final_code_block(completion: str) -> CodeBlock | None:
    """The last block of code in the final answer (after `</think>` when there is one).

    A trailing block tagged as something other than code (```text with sample output) is
    passed over for the last block tagged with a known language or not tagged at all.
    """
    answer = completion.rsplit("</think>", 1)[-1]
    blocks = fenced_blocks(answer)
    code_blocks = [b for b in blocks if b.tag == "" or b.tag in LANGUAGE_ALIASES]
    return (code_blocks or blocks or [None])[-1]


def _require(raw: dict, key: str, kind: type | tuple[type, ...], field: str) -> Any:
    if key not in raw:
        raise SampleError(field, "missing")
    if not isinstance(raw[key], kind):
        raise SampleError(field, f"must be {getattr(kind, '__name__', kind)}")
    return raw[key]


def _reject_unknown(raw: dict, known: set[str], prefix: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SampleError(f"{prefix}.{unknown[0]}", "unknown field")


def _parse_assert(raw: dict) -> FunctionTestSpec:
    _reject_unknown(raw, {"kind", "entry_point", "test", "setup"}, "tests")
    test = raw.get("test")
    entry_point = raw.get("entry_point")
    if entry_point is not None and (not isinstance(entry_point, str) or not entry_point.isidentifier()):
        raise SampleError("tests.entry_point", "must be a Python identifier")
    setup = raw.get("setup", "")
    if not isinstance(setup, str):
        raise SampleError("tests.setup", "must be a string")
    try:
        if isinstance(test, str):
            if entry_point is None:
                raise SampleError("tests.entry_point", "missing (needed with a test source defining check)")
            if not any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in ast.parse(test).body):
                raise SampleError("tests.test", "the test source must define check(candidate)")
            return FunctionTestSpec.humaneval(setup + "\n" + test if setup else test, entry_point)
        if isinstance(test, list) and test and all(isinstance(t, str) for t in test):
            return FunctionTestSpec.assertions(test, setup=setup, entry_point=entry_point)
    except SyntaxError as exc:
        raise SampleError("tests.test", f"does not compile: {exc}") from None
    raise SampleError("tests.test", "must be a source defining check(candidate) or a non-empty list of strings")


def _parse_tolerance(raw: Any) -> FloatTolerance | None:
    try:
        if raw is None:
            return None
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return FloatTolerance(abs_tol=raw, rel_tol=raw)
        if isinstance(raw, dict) and raw and set(raw) <= {"abs", "rel"}:
            return FloatTolerance(abs_tol=raw.get("abs", 0.0), rel_tol=raw.get("rel", 0.0))
    except ValueError as exc:
        raise SampleError("tests.float_tolerance", str(exc)) from None
    raise SampleError("tests.float_tolerance", 'must be null, a number or {"abs": x, "rel": y}')


def _parse_stdio(raw: dict) -> StdioSpec:
    _reject_unknown(raw, {"kind", "cases", "float_tolerance", "checker"}, "tests")
    cases_raw = _require(raw, "cases", list, "tests.cases")
    if not cases_raw:
        raise SampleError("tests.cases", "at least one case is needed")
    cases = []
    for i, case in enumerate(cases_raw):
        field = f"tests.cases[{i}]"
        if not isinstance(case, dict):
            raise SampleError(field, "must be an object")
        _reject_unknown(case, {"stdin", "stdout"}, field)
        cases.append(StdioCase(_require(case, "stdin", str, f"{field}.stdin"),
                               _require(case, "stdout", str, f"{field}.stdout")))
    checker = None
    if raw.get("checker") is not None:
        spec = raw["checker"]
        if not isinstance(spec, dict):
            raise SampleError("tests.checker", "must be an object")
        _reject_unknown(spec, {"language", "source"}, "tests.checker")
        language = _require(spec, "language", str, "tests.checker.language")
        if language not in LANGUAGES:
            raise SampleError("tests.checker.language", f"must be one of {', '.join(LANGUAGES)}")
        checker = Checker(language, _require(spec, "source", str, "tests.checker.source"))
    return StdioSpec(tuple(cases), _parse_tolerance(raw.get("float_tolerance")), checker)


def parse_tests(raw: Any) -> FunctionTestSpec | StdioSpec:
    """Validate a sample's `tests`; a SampleError names the offending field."""
    if not isinstance(raw, dict):
        raise SampleError("tests", "missing or not an object: the code verifier needs tests")
    kind = raw.get("kind")
    if kind == "assert":
        return _parse_assert(raw)
    if kind == "stdio":
        return _parse_stdio(raw)
    raise SampleError("tests.kind", 'must be "assert" or "stdio"')


def parse_limits(raw: dict[str, Any] | None, config: CodeConfig) -> tuple[float, int]:
    """(time_s per test, memory_mib) from the sample's limits, else the config's."""
    raw = raw or {}
    _reject_unknown(raw, {"time_s", "memory_mib"}, "limits")
    time_s, memory_mib = raw.get("time_s", config.time_s), raw.get("memory_mib", config.memory_mib)
    # NaN and infinities fail the range check too.
    if isinstance(time_s, bool) or not isinstance(time_s, (int, float)) or not 0 < time_s <= MAX_TIME_S:
        raise SampleError("limits.time_s", f"must be a number in (0, {MAX_TIME_S}]")
    if isinstance(memory_mib, bool) or not isinstance(memory_mib, int) \
            or not MIN_MEMORY_MIB <= memory_mib <= MAX_MEMORY_MIB:
        raise SampleError("limits.memory_mib", f"must be an integer in [{MIN_MEMORY_MIB}, {MAX_MEMORY_MIB}]")
    return float(time_s), memory_mib


def shared_sandbox() -> Sandbox:
    """This process's warm sandbox (`sandbox.default_sandbox`), shared with sandbox.run callers."""
    return default_sandbox()


class CodeVerifier:
    """Runs the final code block against the sample's tests in the sandbox; reward = fraction passed."""

    name = "code"
    version = "1"
    reference = "tests"

    def __init__(self, config: CodeConfig | None = None) -> None:
        self.config = config or CodeConfig()

    def score(self, sample: Sample) -> VerifierResult:
        spec = parse_tests(sample.tests)
        time_s, memory_mib = parse_limits(sample.limits, self.config)
        if sample.language is not None and sample.language not in LANGUAGES:
            raise SampleError("language", f"must be one of {', '.join(LANGUAGES)}")
        if isinstance(spec, FunctionTestSpec) and sample.language not in (None, "python"):
            raise SampleError("language", "assert tests run Python programs only")
        block = extract_final_code_block(sample.completion)
        if block is None:
            return VerifierResult.no_answer("no fenced code block")
        # The sample's language wins over the fence tag; an untagged block is Python.
        language = sample.language or ("python" if block.tag == "" else LANGUAGE_ALIASES.get(block.tag))
        if language is None:
            return VerifierResult.incorrect(detail=f"code block in unsupported language {block.tag!r}")
        if isinstance(spec, FunctionTestSpec) and language != "python":
            return VerifierResult.incorrect(detail=f"these tests need a Python program, got {language}")
        try:
            get_language(language)
        except ValueError as exc:  # this host lacks the toolchain: the deployment's fault, not the program's
            return VerifierResult.error(str(exc))
        box = shared_sandbox()
        if isinstance(spec, FunctionTestSpec):
            limits = function_test_limits(spec, time_s, memory_mib)
        else:
            limits = Limits(wall_time_s=2 * time_s + 1, cpu_time_s=time_s, memory_mib=memory_mib)
        source = provenance(language, limits, box)
        try:
            if isinstance(spec, FunctionTestSpec):
                report = grade_function_tests(block.code, spec, box.run, time_s=time_s, memory_mib=memory_mib,
                                              stop_at_first_failure=self.config.stop_at_first_failure)
            else:
                report = grade_stdio(language, block.code, spec.cases, box.run, limits, spec.tolerance,
                                     spec.checker, self.config.stop_at_first_failure)
        except GradingFault as exc:
            return replace(VerifierResult.error(str(exc)), provenance=source)
        return replace(self._result(report), tests=report.outcomes, provenance=source)

    def cache_key(self, sample: Sample) -> str | None:
        """The graded program, trailing spaces dropped: completions that differ only in prose share a verdict."""
        block = extract_final_code_block(sample.completion)
        if block is None:
            return None
        program = "\n".join(line.rstrip() for line in block.code.strip("\n").splitlines())
        return f"{sample.language or block.tag}\n{program}"

    def _result(self, report: GradeReport) -> VerifierResult:
        if report.compile_error is not None:
            return VerifierResult.incorrect(detail=report.summary())
        score = report.fraction
        if self.config.binary:
            score = 1.0 if report.all_passed else 0.0
        return VerifierResult.graded(score, detail=report.summary())
