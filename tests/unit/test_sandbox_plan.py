"""Pure parts of the sandbox: request planning, verdict classification, languages, seccomp policy."""

from __future__ import annotations

import signal

import pytest

from sandbox.api import Limits, RunRequest, Status
from sandbox.languages import LANGUAGES, Language, get_language
from sandbox.plan import CompileCache, StepOutcome, build_plan, classify, compile_key
from sandbox.seccomp_policy import DENIED_SYSCALLS, compiled_bpf


def outcome(exit_code=0, sig=None, timed_out=False, cpu_s=0.1) -> StepOutcome:
    return StepOutcome(exit_code=exit_code, signal=sig, timed_out=timed_out, cpu_s=cpu_s, wall_s=0.2,
                       peak_memory_mib=10.0)


PY = build_plan(RunRequest("python", "pass", limits=Limits(cpu_time_s=2)))
CPP = build_plan(RunRequest("cpp", "int main(){}", limits=Limits(cpu_time_s=2)))


@pytest.mark.parametrize(("plan", "outcomes", "kwargs", "expected"), [
    (PY, [outcome()], {}, Status.OK),
    (PY, [outcome(exit_code=1)], {}, Status.RUNTIME_ERROR),
    (PY, [outcome(exit_code=None, sig=signal.SIGSEGV)], {}, Status.RUNTIME_ERROR),
    (PY, [outcome(exit_code=None, timed_out=True)], {}, Status.TIME_LIMIT),
    (PY, [outcome(exit_code=None, sig=signal.SIGXCPU)], {}, Status.TIME_LIMIT),
    (PY, [outcome(exit_code=None, sig=signal.SIGKILL, cpu_s=2.5)], {}, Status.TIME_LIMIT),
    (PY, [outcome(exit_code=None, sig=signal.SIGKILL, cpu_s=0.1)], {"oom_killed": True}, Status.MEMORY_LIMIT),
    (PY, [outcome(exit_code=1)], {"stderr_tail": "MemoryError\n"}, Status.MEMORY_LIMIT),
    (PY, [outcome(exit_code=0)], {"output_exceeded": True}, Status.OUTPUT_LIMIT),
    (CPP, [outcome(exit_code=1)], {}, Status.COMPILE_ERROR),
    (CPP, [outcome(exit_code=None, timed_out=True)], {}, Status.COMPILE_ERROR),
    (CPP, [outcome(), outcome(exit_code=None, sig=signal.SIGABRT)], {"stderr_tail": "std::bad_alloc"},
     Status.MEMORY_LIMIT),
    (CPP, [outcome(), outcome()], {}, Status.OK),
])
def test_classify_maps_outcomes_to_statuses(plan, outcomes, kwargs, expected):
    args = {"output_exceeded": False, "oom_killed": False, "stderr_tail": ""} | kwargs
    assert classify(plan, outcomes, **args)[0] is expected


def test_compiled_language_plans_compile_then_run():
    assert [s.kind for s in CPP.steps] == ["exec", "exec"]
    assert CPP.steps[0].capture and not CPP.steps[1].capture
    assert CPP.steps[0].limits.wall_s == Limits().compile_time_s


def test_python_plan_uses_warm_interpreter_unless_told_not_to():
    assert [s.kind for s in PY.steps] == ["python"]
    cold = build_plan(RunRequest("python", "pass"), warm_python=False)
    assert cold.steps[0].kind == "exec" and cold.steps[0].argv[0] == "/usr/bin/python3"


def test_request_files_are_read_only_next_to_source():
    plan = build_plan(RunRequest("python", "pass", files={"harness.py": "x = 1", "data/t.json": "{}"}))
    assert [(name, ro) for name, _, _, ro in plan.files] == [
        ("solution.py", True), ("data/t.json", True), ("harness.py", True)]


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "", "solution.py"])
def test_bad_file_names_are_rejected(name):
    with pytest.raises(ValueError, match="bad file name"):
        build_plan(RunRequest("python", "pass", files={name: ""}))


def test_result_fd_is_announced_in_env_only_when_requested():
    assert "ARBITER_RESULT_FD" not in PY.env
    assert build_plan(RunRequest("python", "pass", result_fd=True)).env["ARBITER_RESULT_FD"] == "3"


def test_unknown_language_names_known_ones():
    with pytest.raises(ValueError, match="cpp"):
        get_language("cobol")


def test_every_language_row_is_complete():
    for name, language in LANGUAGES.items():
        assert language.name == name and language.source_file and language.run_argv


def test_seccomp_policy_compiles_to_bpf():
    bpf = compiled_bpf()
    assert len(bpf) > 8 * len(DENIED_SYSCALLS) // 2 and len(bpf) % 8 == 0


def test_each_network_setting_has_its_own_filter():
    assert compiled_bpf("none") != compiled_bpf("private_loopback") == compiled_bpf()


def test_unknown_network_is_rejected():
    with pytest.raises(ValueError, match="network must be one of"):
        Limits(network="host")


def test_plan_carries_the_network_setting():
    assert PY.network == "private_loopback"
    assert build_plan(RunRequest("python", "pass", limits=Limits(network="none"))).network == "none"


def test_limits_reject_non_positive_values():
    with pytest.raises(ValueError, match="memory_mib"):
        Limits(memory_mib=0)


def test_cached_artifact_replaces_the_compile_step():
    request = RunRequest("cpp", "int main(){}")
    plan = build_plan(request, artifact=b"\x7fELF...")
    assert [s.argv for s in plan.steps] == [("./main",)] and not plan.compiles
    assert ("main", b"\x7fELF...", 0o555, True) in plan.files
    assert plan.cache_key is None and CPP.cache_key == compile_key(request) and CPP.collect == "main"


def test_compile_key_depends_on_source_and_is_none_for_python():
    assert compile_key(RunRequest("cpp", "a")) != compile_key(RunRequest("cpp", "b"))
    assert compile_key(RunRequest("python", "a")) is None


def test_compile_cache_evicts_least_recently_used():
    cache = CompileCache(max_bytes=40)
    cache.put("a", b"x" * 10)
    cache.put("b", b"x" * 10)
    cache.get("a")
    cache.put("c", b"x" * 10)
    cache.put("d", b"x" * 10)
    cache.put("e", b"x" * 10)
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("e") is not None


def test_compile_is_a_plan_of_its_own_under_the_compilers_limits():
    compile_only = CPP.compile_only()
    assert [s.argv[0] for s in compile_only.steps] == ["/usr/bin/g++"] and compile_only.collect == "main"
    assert compile_only.steps[0].limits.memory_bytes > CPP.steps[1].limits.memory_bytes
    ok = StepOutcome(0, None, False, 0.5, 0.5, 100.0)
    assert classify(compile_only, [ok], output_exceeded=False, oom_killed=False, stderr_tail="")[0] is Status.OK
    assert classify(CPP, [ok], output_exceeded=False, oom_killed=False, stderr_tail="")[0] is Status.SANDBOX_ERROR


def test_a_language_that_compiles_must_name_its_artifact():
    with pytest.raises(ValueError, match="go together"):
        Language(name="x", source_file="x.c", run_argv=("./x",), compile_argv=("/usr/bin/cc", "x.c"))


def test_passed_test_keeps_only_its_time_and_a_failure_its_capped_diagnostics():
    from sandbox.grading.result import DIAGNOSTIC_CAP_CHARS, Outcome, TestOutcome

    passed = TestOutcome.judged(0, Outcome.PASSED, time_s=0.5, input="x", expected="y", actual="y")
    assert (passed.input, passed.expected, passed.time_s) == ("", "", 0.5)
    failed = TestOutcome.judged(1, Outcome.FAILED, input="i" * 5000, actual="a" + chr(0xDC80),
                                stderr="s" * 5000 + "END")
    assert failed.input == "i" * DIAGNOSTIC_CAP_CHARS + "..." and failed.actual == "a\\udc80"
    assert failed.stderr_tail.startswith("...") and failed.stderr_tail.endswith("END")
    assert failed.to_record() == {"test": 1, "status": "failed", "input": failed.input, "actual": "a\\udc80",
                                  "stderr_tail": failed.stderr_tail}
