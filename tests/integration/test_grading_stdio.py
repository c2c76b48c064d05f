"""Standard-input/output tests: the whole-output comparison, tolerances, special judges, C++ and Python."""

from __future__ import annotations

import json

import pytest

from rewards.code import CodeVerifier, shared_sandbox
from rewards.types import Sample, Verdict
from sandbox.api import Limits
from sandbox.grading import FloatTolerance, Outcome, StdioCase, grade_stdio, outputs_match

TOL = FloatTolerance(abs_tol=1e-6, rel_tol=1e-6)


@pytest.mark.parametrize(
    ("expected", "actual", "tolerance", "match"),
    [
        ("1 2\n3\n", "1 2\n3\n", None, True),
        ("1 2\n3\n", "1   2  \n3", None, True),  # spacing and the final newline do not matter
        ("1 2\n3\n", "1 2\n3\n\n\n", None, True),  # nor trailing blank lines
        ("1 2\n3\n", "1 2\n", None, False),  # a correct prefix is not enough
        ("1 2\n", "1 2\n3\n", None, False),  # nor are extra lines
        ("1 2\n3\n", "1 2 3\n", None, False),  # line structure counts
        ("\n1\n", "1\n", None, False),  # leading blank lines count
        ("yes\n", "YES\n", None, False),
        ("0.333333333\n", "0.3333334\n", None, False),
        ("0.333333333\n", "0.3333334\n", TOL, True),
        ("1000000.0\n", "1000000.5\n", TOL, True),  # relative
        ("1000000.0\n", "1000002\n", TOL, False),
        ("1e-9\n", "0\n", TOL, True),
        ("nan\n", "nan\n", TOL, True),
        ("inf\n", "1e308\n", TOL, False),  # only decimal numbers get a tolerance
        ("abc 1.0\n", "abd 1.0\n", TOL, False),
    ],
)
def test_outputs_match_whole_output(expected, actual, tolerance, match):
    assert outputs_match(expected, actual, tolerance)[0] is match


@pytest.fixture(scope="module")
def run():
    return shared_sandbox().run


CASES = [StdioCase("3\n1 2 3\n", "6\n"), StdioCase("2\n5 5\n", "10\n")]
PY_SUM = "input()\nprint(sum(map(int, input().split())))\n"
CPP_SUM = ("#include <cstdio>\nint main(){int n;long long s=0,x;scanf(\"%d\",&n);"
           "for(int i=0;i<n;i++){scanf(\"%lld\",&x);s+=x;}printf(\"%lld\\n\",s);}\n")
LIMITS = Limits(wall_time_s=3.0, cpu_time_s=1.0)


def test_python_program_passes_all_cases(run):
    assert grade_stdio("python", PY_SUM, CASES, run, LIMITS).all_passed


def test_wrong_output_fails_only_that_case(run):
    code = "n = int(input())\nprint(sum(map(int, input().split())) if n == 3 else 0)\n"
    report = grade_stdio("python", code, CASES, run, LIMITS)
    assert [o.outcome for o in report.outcomes] == [Outcome.PASSED, Outcome.FAILED]


def test_nonzero_exit_is_a_runtime_error_even_with_right_output(run):
    report = grade_stdio("python", PY_SUM + "raise SystemExit(1)\n", CASES[:1], run, LIMITS)
    assert report.outcomes[0].outcome is Outcome.RUNTIME_ERROR


def test_endless_program_hits_the_time_limit(run):
    report = grade_stdio("python", "while True:\n    pass\n", CASES[:1], run, LIMITS)
    assert report.outcomes[0].outcome is Outcome.TIME_LIMIT


def test_cpp_program_passes_all_cases(run):
    assert grade_stdio("cpp", CPP_SUM, CASES, run, LIMITS).all_passed


def _sample(completion: str, tests: dict, language: str | None = None) -> Sample:
    return Sample(id="s", task="code", completion=completion, tests=tests, language=language)


def test_cpp_compile_error_scores_zero_with_the_compiler_message():
    tests = {"kind": "stdio", "cases": [{"stdin": "", "stdout": "1\n"}]}
    result = CodeVerifier().score(_sample("```cpp\nint main() { return x; }\n```", tests))
    assert result.verdict is Verdict.INCORRECT and result.score == 0.0
    assert "did not compile" in result.detail and "x" in result.detail


def test_float_tolerance_from_the_sample():
    cases = [{"stdin": "", "stdout": "0.333333333\n"}]
    code = "```python\nprint(round(1 / 3, 7))\n```"
    assert CodeVerifier().score(_sample(code, {"kind": "stdio", "cases": cases})).score == 0.0
    tolerant = {"kind": "stdio", "cases": cases, "float_tolerance": 1e-6}
    assert CodeVerifier().score(_sample(code, tolerant)).score == 1.0


# A special judge: any order of the expected numbers is accepted.
ANY_ORDER = (
    "import sys\n"
    "want = sorted(open('expected.txt').read().split())\n"
    "got = sorted(open('output.txt').read().split())\n"
    "if want == got:\n    sys.exit(0)\n"
    "print(f'expected {len(want)} numbers in any order')\nsys.exit(1)\n"
)
PERMUTATION = {"kind": "stdio", "cases": [{"stdin": "3\n", "stdout": "1 2 3\n"}],
               "checker": {"language": "python", "source": ANY_ORDER}}


def test_checker_accepts_an_equivalent_output():
    code = "```python\nn = int(input())\nprint(*reversed(range(1, n + 1)))\n```"
    assert CodeVerifier().score(_sample(code, PERMUTATION)).score == 1.0


def test_checker_rejects_a_wrong_output_with_its_reason():
    result = CodeVerifier().score(_sample("```python\nprint(1, 2)\n```", PERMUTATION))
    assert result.score == 0.0 and "any order" in result.detail


def test_broken_checker_is_an_error_verdict_not_zero():
    broken = {**PERMUTATION, "checker": {"language": "python", "source": "import sys\nsys.exit(7)\n"}}
    result = CodeVerifier().score(_sample("```python\nprint(1, 2, 3)\n```", broken))
    assert result.verdict is Verdict.ERROR and result.score is None and "checker failed" in result.detail


def test_failed_case_reports_its_input_expected_actual_and_stderr_tail(run):
    code = "import sys\nprint('tail of the log', file=sys.stderr)\nn = int(input())\nprint(0 if n == 2 else 6)\n"
    passed, failed = grade_stdio("python", code, CASES, run, LIMITS).outcomes
    assert passed.passed and passed.time_s is not None and not passed.input
    assert (failed.input, failed.expected, failed.actual) == ("2\n5 5\n", "10\n", "0\n")
    assert failed.stderr_tail == "tail of the log\n" and failed.time_s > 0


def test_diagnostics_of_a_failure_are_capped(run):
    code = "import sys\nsys.stderr.write('e' * 100000)\nprint('x' * 100000)\n"
    (failed,) = grade_stdio("python", code, CASES[:1], run, LIMITS).outcomes
    assert failed.outcome is Outcome.FAILED
    assert len(failed.actual) < 1100 and failed.actual.endswith("...")
    assert len(failed.stderr_tail) < 1100 and failed.stderr_tail.startswith("...")


def test_score_cli_prints_per_test_outcomes_and_provenance(tmp_path):
    from arbiter.cli import main

    sample = {"id": "s", "task": "code", "completion": f"```python\n{PY_SUM}```",
              "tests": {"kind": "stdio", "cases": [{"stdin": "1\n4\n", "stdout": "5\n"}]}}
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps(sample) + "\n")
    assert main(["score", "--input", str(source), "--output", str(out), "--verifier", "code"]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    code = record["components"]["code"]
    assert code["tests"][0]["status"] == "failed" and code["tests"][0]["actual"] == "4\n"
    assert code["provenance"]["toolchain"].startswith("Python 3") and code["provenance"]["limits"]["memory_mib"]
