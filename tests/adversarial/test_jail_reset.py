"""A jail that cannot be reset for the next run is retired, and that run goes to a fresh jail.

What a hostile run would leave behind to break its jail's reset (memory charged to the jail's
cgroup that no reclaim can free, so that lowering the limit fails with EBUSY) is played here by
a process of the test's own, locked in memory and moved into the jail's memory cgroup: the same
kernel state, without depending on a hole that the sandbox closes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from sandbox import Limits, PoolConfig, RunRequest, Sandbox, Status

PINNER = """
import ctypes, sys
sys.stdin.readline()
block = bytearray(200 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
assert ctypes.CDLL(None).mlockall(3) == 0  # MCL_CURRENT | MCL_FUTURE: no reclaim can take it
print("pinned", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def box():
    with Sandbox(PoolConfig(pool_size=1)) as sandbox:
        if sandbox._backend.cgroup_manager is None:
            pytest.skip("no writable cgroup memory controller: no jail limits to reset")
        yield sandbox


def test_jail_whose_memory_limit_cannot_be_lowered_is_retired_and_the_run_goes_elsewhere(box):
    first = box.run(RunRequest("python", "print('first')", limits=Limits(memory_mib=512)))
    assert first.status is Status.OK
    (jail,) = box._live
    pinner = subprocess.Popen([sys.executable, "-c", PINNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        (jail.cgroup.dirs[0] / "cgroup.procs").write_text(str(pinner.pid))
        pinner.stdin.write("go\n")
        pinner.stdin.flush()
        assert pinner.stdout.readline().strip() == "pinned"
        # 64 MiB (+ the launcher's overhead) is below what the jail's cgroup now holds.
        result = box.run(RunRequest("python", "print('honest')", limits=Limits(memory_mib=64)))
    finally:
        pinner.kill()
        pinner.wait()
    assert (result.status, result.stdout) == (Status.OK, "honest\n")
    assert not jail.alive and jail not in box._live
