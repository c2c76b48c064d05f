"""Function-call tests (HumanEval and MBPP forms) graded by the referee harness in the real sandbox."""

from __future__ import annotations

import math

import pytest

from rewards.code import CodeVerifier, shared_sandbox
from rewards.types import Sample, Verdict
from sandbox.api import Limits, RunRequest, RunResult, Status
from sandbox.grading import FunctionTestSpec, GradingFault, Outcome, grade_function_tests
from sandbox.grading.function_tests import HARNESS_FILES, STARTED_MARKER, parse_report
from sandbox.grading.harness import wire


@pytest.fixture(scope="module")
def run():
    return shared_sandbox().run


def grade(run, code: str, tests: list[str], **kwargs):
    return grade_function_tests(code, FunctionTestSpec.assertions(tests), run, time_s=kwargs.pop("time_s", 2.0),
                                **kwargs)


# ---------------------------------------------------------------- the value codec (pure)

VALUES = [None, True, False, 0, -7, 2**100, 1.5, -0.0, math.inf, "héllo\n", b"\x00\xff", [1, [2, "x"]], (1, (2,)),
          (), {"a": 1, (1, 2): [3]}, {1, 2}, frozenset({"x"}), 3 + 4j, [(), {}, set()], range(1, 9, 2)]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_wire_round_trips_builtin_values_with_their_types(value):
    decoded = wire.loads(wire.dumps(["return", wire.encode(value)]))[1]
    assert decoded == value and type(decoded) is type(value)


def test_wire_sends_iterators_as_list_iterators_over_their_items():
    decoded = wire.loads(wire.dumps(["return", wire.encode(map(str, (x * x for x in range(3))))]))[1]
    assert type(decoded) is type(iter([])) and list(decoded) == ["0", "1", "4"]


def test_wire_keeps_nan():
    assert math.isnan(wire.loads(wire.dumps(["return", wire.encode(math.nan)]))[1])


@pytest.mark.parametrize("value", [type("I", (int,), {})(3), type("L", (list,), {})(), object(), print, {}.keys()],
                         ids=["int-subclass", "list-subclass", "object", "function", "dict-view"])
def test_wire_refuses_subclasses_and_foreign_objects(value):
    with pytest.raises(wire.WireError):
        wire.encode(value)


@pytest.mark.parametrize("line", [b'{"return": 1}', b'["return", {"$eval": "1"}]', b'["return", {"$t": 1}]',
                                  b'["return", {"$s": [[1]]}]', b'["return", {"$d": [[[1], 2]]}]',
                                  b'["return", {"$t": [], "$s": []}]', b"[", b"[" * 100000, b"[]"])
def test_wire_rejects_malformed_messages(line):
    with pytest.raises(wire.WireError):
        wire.loads(line)


# ---------------------------------------------------------------- grading in the sandbox


def test_humaneval_form_passes_a_correct_solution(run):
    spec = FunctionTestSpec.humaneval("def check(candidate):\n    assert candidate(2) == 4\n", "square")
    report = grade_function_tests("def square(x):\n    return x * x\n", spec, run)
    assert report.all_passed and report.total == 1


def test_mbpp_lines_give_partial_credit(run):
    report = grade(run, "def f(x):\n    return x if x < 3 else 0\n", ["assert f(1) == 1", "assert f(2) == 2",
                                                                       "assert f(3) == 3"])
    assert [o.outcome for o in report.outcomes] == [Outcome.PASSED, Outcome.PASSED, Outcome.FAILED]
    assert report.fraction == pytest.approx(2 / 3)


def test_stop_at_first_failure_skips_the_rest(run):
    report = grade(run, "def f(x):\n    return 0\n", ["assert f(1) == 1", "assert f(0) == 0"],
                   stop_at_first_failure=True)
    assert [o.outcome for o in report.outcomes] == [Outcome.FAILED, Outcome.SKIPPED]


def test_time_limit_fails_that_test_and_the_next_tests_still_run(run):
    code = "def f(x):\n    while x == 1:\n        pass\n    return x\n"
    report = grade(run, code, ["assert f(1) == 1", "assert f(2) == 2"], time_s=1.0)
    assert [o.outcome for o in report.outcomes] == [Outcome.TIME_LIMIT, Outcome.PASSED]


def test_crash_in_one_test_does_not_fail_the_next(run):
    code = "import os\ndef f(x):\n    if x == 1:\n        os._exit(3)\n    return x\n"
    report = grade(run, code, ["assert f(1) == 1", "assert f(2) == 2"])
    assert [o.outcome for o in report.outcomes] == [Outcome.RUNTIME_ERROR, Outcome.PASSED]


def test_candidate_exception_is_a_runtime_error_outcome(run):
    report = grade(run, "def f(x):\n    return 1 / x\n", ["assert f(0) == 0"])
    assert report.outcomes[0].outcome is Outcome.RUNTIME_ERROR and "ZeroDivisionError" in report.outcomes[0].detail


def test_builtin_exceptions_cross_so_tests_can_expect_them(run):
    code = "def f(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x\n"
    test = "try:\n    f(-1)\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError('no ValueError')\n"
    assert grade(run, code, [test]).all_passed


def test_values_keep_their_types_across_the_pipe(run):
    tests = ["assert f('tuple') == (1, 2)", "assert f('list') == [1, 2]", "assert type(f('bool')) is bool",
             "assert f('dict') == {(1, 2): {3}}", "assert f('bytes') == b'ab'", "assert f('float') == 0.5"]
    right = ("def f(k):\n    return {'tuple': (1, 2), 'list': [1, 2], 'bool': True, 'dict': {(1, 2): {3}},"
             " 'bytes': b'ab', 'float': 0.5}[k]\n")
    assert grade(run, right, tests).all_passed
    wrong = ("def f(k):\n    return {'tuple': [1, 2], 'list': (1, 2), 'bool': 1, 'dict': {(1, 2): [3]},"
             " 'bytes': 'ab', 'float': '0.5'}[k]\n")
    assert grade(run, wrong, tests).passed == 0


def test_lazy_results_behave_as_they_would_natively(run):
    code = "def f(n):\n    return map(lambda x: x * x, range(n))\n"
    report = grade(run, code, ["assert list(f(3)) == [0, 1, 4]", "assert f(3) == [0, 1, 4]"])
    assert [o.outcome for o in report.outcomes] == [Outcome.PASSED, Outcome.FAILED]


def test_test_argument_that_cannot_cross_is_a_fault_not_a_failure(run):
    with pytest.raises(GradingFault, match="cannot be sent"):
        grade(run, "def apply(f, x):\n    return f(x)\n", ["assert apply(lambda x: x + 1, 1) == 2"])


def test_hanging_setup_is_a_fault_not_a_failure(run):
    spec = FunctionTestSpec.assertions(["assert f(1) == 1"], setup="while True:\n    pass\n")
    with pytest.raises(GradingFault, match="TestTimeout"):
        grade_function_tests("def f(x):\n    return x\n", spec, run, time_s=1.0)


def test_candidate_output_does_not_disturb_grading(run):
    code = "import sys\nprint('noise ' * 10000)\ndef f(x):\n    print(x, file=sys.stderr)\n    print(x)\n    return x\n"
    assert grade(run, code, ["assert f(1) == 1", "assert f(2) == 2"]).all_passed


def test_module_level_failure_is_a_load_error(run):
    report = grade(run, "raise ImportError('no numpy here')\n", ["assert f(1) == 1"])
    assert report.compile_error is not None and "ImportError" in report.compile_error and report.passed == 0


def test_tests_may_use_standard_modules_without_importing_them(run):
    code = "import math\ndef area(r):\n    return math.pi * r * r\n"
    assert grade(run, code, ["assert math.isclose(area(2), 12.566, rel_tol=0.001)"]).all_passed


def test_setup_helpers_are_the_references_not_the_candidates(run):
    spec = FunctionTestSpec.assertions(["assert f(2) == helper(2)"], setup="def helper(x):\n    return x + 1\n")
    code = "def helper(x):\n    return 0\ndef f(x):\n    return 0\n"
    assert grade_function_tests(code, spec, run).passed == 0


def _sample(code: str, tests: dict) -> Sample:
    return Sample(id="t", task="code", completion=f"```python\n{code}```", tests=tests)


def test_verifier_reward_is_the_fraction_passed():
    tests = {"kind": "assert", "test": ["assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 3", "assert f(4) == 0"]}
    result = CodeVerifier().score(_sample("def f(x):\n    return x\n", tests))
    assert result.verdict is Verdict.INCORRECT and result.score == 0.75


def test_verifier_binary_option_gives_zero_unless_all_pass():
    from rewards.code import CodeConfig

    tests = {"kind": "assert", "test": ["assert f(1) == 1", "assert f(4) == 0"]}
    assert CodeVerifier(CodeConfig(binary=True)).score(_sample("def f(x):\n    return x\n", tests)).score == 0.0


def test_broken_setup_is_an_error_verdict_not_zero():
    tests = {"kind": "assert", "setup": "raise RuntimeError('broken fixture')", "test": ["assert f(1) == 1"]}
    result = CodeVerifier().score(_sample("def f(x):\n    return x\n", tests))
    assert result.verdict is Verdict.ERROR and result.score is None and "broken fixture" in result.detail


def _result(status: Status, report: bytes | None) -> RunResult:
    return RunResult(status, 0, None, "", "boom", 0.1, 0.1, None, detail="jail lost", result_bytes=report)


def test_sandbox_fault_raises_grading_fault():
    with pytest.raises(GradingFault, match="sandbox fault"):
        parse_report(_result(Status.SANDBOX_ERROR, None), "n", ("t",))


def test_harness_that_never_started_is_a_fault_not_a_failure():
    with pytest.raises(GradingFault, match="did not start"):
        parse_report(_result(Status.RUNTIME_ERROR, b""), "n", ("t",))


def test_records_without_the_nonce_are_ignored():
    forged = f'{STARTED_MARKER}\nother {{"test": 0, "status": "passed", "detail": ""}}\n'.encode()
    report = parse_report(_result(Status.RUNTIME_ERROR, forged), "nonce", ("t",))
    assert report.passed == 0 and report.outcomes[0].outcome is Outcome.RUNTIME_ERROR


def test_harness_modules_load_from_their_shipped_bytecode(run):
    """The referee's modules are not compiled in the sandbox per run: their .pyc travels with them
    (a launcher that did not preload them, as in a Docker container, imports them from there)."""
    source = (
        "import sys\n"
        "for name in ('arbiter_wire', 'arbiter_contestant', 'arbiter_referee'):\n"
        "    sys.modules.pop(name, None)\n"
        "import importlib._bootstrap_external as bootstrap\n"
        "compiled = []\n"
        "original = bootstrap.SourceLoader.source_to_code\n"
        "def source_to_code(self, data, path, **kwargs):\n"
        "    compiled.append(path)\n"
        "    return original(self, data, path, **kwargs)\n"
        "bootstrap.SourceLoader.source_to_code = source_to_code\n"
        "import arbiter_wire, arbiter_contestant, arbiter_referee\n"
        "print(compiled, arbiter_referee.__cached__)\n"
    )
    result = run(RunRequest("python", source, files=HARNESS_FILES, stdin="{}",
                            limits=Limits(wall_time_s=10, cpu_time_s=10), result_fd=True))
    assert (result.status, result.stdout) == (Status.OK, "[] /work/__pycache__/arbiter_referee.cpython-311.pyc\n")


def test_warm_jail_starts_every_program_with_the_harness_already_imported(run):
    """The pool's launcher imports the harness once: a run finds the very modules that ship with it."""
    from sandbox.grading.harness import MODULES

    source = (
        "import sys\n"
        "for name in ('arbiter_wire', 'arbiter_contestant', 'arbiter_referee'):\n"
        "    module = sys.modules[name]\n"
        "    print(name, module.__file__, hasattr(module, 'main') or hasattr(module, 'loads'))\n"
    )
    result = run(RunRequest("python", source, limits=Limits(wall_time_s=10, cpu_time_s=10)))
    assert result.status is Status.OK, result
    assert result.stdout.splitlines() == [f"{name} {name}.py True" for name in MODULES]


def test_failed_equality_assert_reports_the_test_and_both_values(run):
    spec = FunctionTestSpec.assertions(["assert f(1) == 4", "assert f(2) == 8", "assert f(3) < 0, 'negative'"])
    passed, unequal, other = grade_function_tests("def f(x):\n    return 3 * x + 1\n", spec, run).outcomes
    assert passed.passed and passed.time_s is not None
    assert (unequal.input, unequal.expected, unequal.actual) == ("assert f(2) == 8", "8", "7")
    assert other.input == "assert f(3) < 0, 'negative'" and not other.expected and "negative" in other.detail
