"""Hostile programs against the local sandbox, all run inside an outer containment.

One containment run (containment.py around contained.py) executes every program of programs/
and reports; the tests below judge that report. The host-side checks are the point: nothing
reached a listener on the (outer) host's loopback, a process outside survived kill(-1), no
daemon outlived its run, no file appeared outside the jail.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PROGRAMS = sorted(p.name for p in (HERE / "programs").iterdir())
sys.path.insert(0, str(HERE))
try:
    from contained import FOLLOWED, GRADED
    from graders import CANDIDATES
finally:
    sys.path.remove(str(HERE))

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None or shutil.which("unshare") is None,
                                reason="bubblewrap or util-linux unshare is not installed")


def _run_contained(command: list[str]) -> dict:
    sys.path.insert(0, str(HERE))
    try:
        from containment import run_contained
    finally:
        sys.path.remove(str(HERE))
    completed, note = run_contained(command, timeout_s=400)
    print(note)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


@pytest.fixture(scope="module", params=["cgroups", "rlimits-only"])
def report(request) -> dict:
    """Everything once with the per-jail cgroups in force and once with rlimits alone."""
    command = [sys.executable, str(HERE / "contained.py")]
    if request.param == "rlimits-only":
        command.append("--no-cgroups")
    return _run_contained(command)


@pytest.fixture(scope="module")
def graders() -> dict:
    return _run_contained([sys.executable, str(HERE / "graders.py")])


def test_suite_has_at_least_40_programs():
    assert len(PROGRAMS) >= 40


@pytest.mark.parametrize("name", PROGRAMS)
def test_hostile_program_is_contained(report, name):
    case = report["cases"][name]
    assert case["status"] in case["expected"], (case["detail"], case["stdout"][-500:], case["stderr"][-500:])
    assert "ESCAPED" not in case["stdout"] + case["stderr"], case["stdout"][-1000:]


def test_host_loopback_listener_is_never_reached(report):
    assert report["host"]["listener_connections"] == 0


def test_process_outside_survives_kill_minus_one(report):
    assert report["host"]["sentinel_alive"]


def test_daemon_does_not_outlive_its_run(report):
    assert report["host"]["marker_processes"] == []


def test_no_file_is_written_outside_the_jail(report):
    assert report["host"]["host_paths_written"] == []


def test_harness_result_channel_is_not_forged(report):
    assert report["cases"]["harness_fd_forgery.py"]["result_bytes"] == "genuine"


def test_concurrent_run_sees_only_its_own_processes(report):
    # Only the jail's launcher (PID 1) besides the program itself: no process of another run.
    assert report["cases"]["snoop_concurrent.py"]["stdout"].startswith("other pids visible [1]\n")


def test_jails_ran_under_the_outer_cgroup_when_there_is_one(report):
    describe = report["host"]["describe"]
    assert "arbiter-adversarial-" in describe or "rlimits only" in describe


def _has_cgroups(report: dict) -> bool:
    return "rlimits only" not in report["host"]["describe"]


@pytest.mark.parametrize("name", FOLLOWED)
def test_hostile_run_leaves_nothing_for_the_honest_runs_after_it_in_its_jail(report, name):
    (run,) = [r for r in report["followed"] if r["hostile"] == name]
    assert run["status"] in report["cases"][name]["expected"], run
    for label, follower in run["followers"].items():
        assert follower["status"] == "ok", (label, follower["detail"], follower["stderr"][-500:])
        assert f"{label} ok" in follower["stdout"] and "ESCAPED" not in follower["stdout"], follower["stdout"]


def test_compiled_program_runs_under_its_own_memory_limit_not_the_compilers(report):
    if not _has_cgroups(report):
        pytest.skip("rlimits alone bound each process, not the sum over a run's processes")
    assert report["cases"]["compiled_forked_allocators.cpp"]["status"] == "memory_limit"


@pytest.mark.parametrize("name", sorted(GRADED))
def test_candidate_signalling_the_referee_fails_its_tests_without_a_fault(report, name):
    graded = report["graded"][name]
    assert graded["hostile"] == {"fault": None, "outcomes": ["failed"] * 3}
    assert graded["follower"] == {"fault": None, "outcomes": ["passed"] * 3}


def test_unencodable_candidate_text_never_loses_a_cli_line(graders):
    cli = graders["cli"]
    assert cli["returncode"] == 0, cli["stderr"]
    assert sorted(cli["verdicts"]) == sorted([*CANDIDATES, "honest_stdio"])
    assert {name for name, verdict in cli["verdicts"].items() if verdict == "correct"} == {"honest", "honest_stdio"}
    assert "ValueError: x\\udc80" in cli["details"]["surrogate_exception_text"]
    assert "E\\udcff: forged" in cli["details"]["surrogate_class_name"]


def test_unencodable_candidate_text_never_fails_a_grpc_batch_fresh_or_cached(graders):
    fresh, cached = graders["grpc"]["rounds"]
    for batch in (fresh, cached):
        assert "error" not in batch, batch
        assert batch["verdicts"]["honest"] == batch["verdicts"]["honest_stdio"] == "VERDICT_CORRECT"
        assert {v for name, v in batch["verdicts"].items() if not name.startswith("honest")} == {"VERDICT_INCORRECT"}
        assert "ValueError: x\\udc80" in batch["details"]["surrogate_exception_text"]
    assert all(flags == [True] for flags in cached["cached"].values())
