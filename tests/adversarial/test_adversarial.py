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

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None or shutil.which("unshare") is None,
                                reason="bubblewrap or util-linux unshare is not installed")


@pytest.fixture(scope="module", params=["cgroups", "rlimits-only"])
def report(request) -> dict:
    """Everything once with the per-jail cgroups in force and once with rlimits alone."""
    sys.path.insert(0, str(HERE))
    try:
        from containment import run_contained
    finally:
        sys.path.remove(str(HERE))
    command = [sys.executable, str(HERE / "contained.py")]
    if request.param == "rlimits-only":
        command.append("--no-cgroups")
    completed, note = run_contained(command, timeout_s=240)
    print(note)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


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
