"""The Docker backend against a real engine: a private dockerd started in a temporary folder.

Needs root and Debian's docker.io (dockerd); elsewhere the module skips with the reason. The
daemon runs without a bridge, iptables rules or IP forwarding, so it leaves the host's network
as it found it; the test still restores ip_forward and removes docker0 should they appear.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sandbox import Limits, RunRequest, Status

pytestmark = pytest.mark.slow

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def _docker0_exists() -> bool:
    return Path("/sys/class/net/docker0").exists()


@pytest.fixture(scope="module")
def docker_backend():
    if os.geteuid() != 0:
        pytest.skip("starting a private dockerd needs root")
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip("dockerd is not installed (Debian: apt-get install docker.io)")
    from sandbox.docker_backend import DockerBackend, DockerConfig

    root = Path(tempfile.mkdtemp(prefix="arbiter-dockerd-"))
    socket_path = root / "docker.sock"
    forward_before, docker0_before = IP_FORWARD.read_text(), _docker0_exists()
    log = (root / "dockerd.log").open("w")
    daemon = subprocess.Popen(
        [dockerd, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "--pidfile",
         str(root / "dockerd.pid"), "-H", f"unix://{socket_path}", "--bridge", "none", "--iptables=false",
         "--ip6tables=false", "--ip-forward=false", "--ip-masq=false"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    backend = None
    try:
        deadline = time.monotonic() + 60
        while backend is None:
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"dockerd did not start here: {(root / 'dockerd.log').read_text()[-400:]}")
            with contextlib.suppress(Exception):
                backend = DockerBackend(DockerConfig(base_url=f"unix://{socket_path}"))
            time.sleep(0.5)
        yield backend
    finally:
        if backend is not None:
            backend.close()
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        subprocess.run(["umount", "-R", "-l", str(root)], capture_output=True)
        for mount in Path("/proc/mounts").read_text().splitlines():
            if str(root) in mount:
                subprocess.run(["umount", "-l", mount.split()[1]], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        if IP_FORWARD.read_text() != forward_before:
            IP_FORWARD.write_text(forward_before)
        if _docker0_exists() and not docker0_before:
            subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True)


def test_docker_python_run_is_ok(docker_backend):
    result = docker_backend.run(RunRequest("python", "print(input() * 2)", stdin="ab"))
    assert (result.status, result.stdout) == (Status.OK, "abab\n")


def test_docker_cpp_compiles_and_runs(docker_backend):
    result = docker_backend.run(RunRequest("cpp", "#include <cstdio>\nint main(){std::puts(\"cpp\");}"))
    assert (result.status, result.stdout) == (Status.OK, "cpp\n")


READ_OWN_MEMORY_LIMIT = """#include <fstream>
#include <iostream>
int main() {
    for (const char *path : {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"}) {
        std::ifstream file(path);
        long long limit;
        if (file >> limit) { std::cout << limit << std::endl; return 0; }
    }
    return 1;
}
"""


def test_docker_compiled_program_runs_under_its_own_memory_limit_not_the_compilers(docker_backend):
    result = docker_backend.run(RunRequest("cpp", READ_OWN_MEMORY_LIMIT, limits=Limits(memory_mib=128)))
    if result.status is not Status.OK:
        pytest.skip(f"the container cannot read its own memory limit here: {result.stderr[-200:]}")
    assert int(result.stdout) == (128 + docker_backend.config.cgroup_overhead_mib) << 20


def test_docker_result_fd_is_returned_out_of_band(docker_backend):
    result = docker_backend.run(RunRequest("python", "import os; os.write(3, b'verdict')", result_fd=True))
    assert result.result_bytes == b"verdict"


def test_docker_output_flood_is_output_limit(docker_backend):
    request = RunRequest("python", "while True: print('x' * 999)", limits=Limits(max_output_bytes=8192))
    result = docker_backend.run(request)
    assert result.status is Status.OUTPUT_LIMIT and len(result.stdout) <= 8192


def test_docker_allocation_bomb_is_memory_limit(docker_backend):
    assert docker_backend.run(RunRequest("python", "x = bytearray(1 << 34)")).status is Status.MEMORY_LIMIT


def test_docker_sleep_is_time_limit(docker_backend):
    request = RunRequest("python", "import time; time.sleep(60)", limits=Limits(wall_time_s=1))
    assert docker_backend.run(request).status is Status.TIME_LIMIT


def test_docker_run_has_no_network_privileges_or_writable_root(docker_backend):
    source = (
        "import os, socket\n"
        "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status') if ':\\t' in l)\n"
        "print(os.getuid() != 0, int(status['CapEff'], 16), status['NoNewPrivs'].strip())\n"
        "for attempt in (lambda: socket.socket(), lambda: open('/usr/pwned', 'w'), lambda: open('/pwned', 'w')):\n"
        "    try:\n"
        "        attempt(); print('ESCAPED')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    # network="none": no inet socket at all (the default, private_loopback, allows the container's own lo).
    result = docker_backend.run(RunRequest("python", source, limits=Limits(network="none")))
    assert (result.status, result.stdout) == (Status.OK, "True 0 1\n")


def test_docker_grades_function_tests_with_the_harness_from_its_shipped_files(docker_backend):
    # A container's launcher preloads nothing: the referee and its modules load from the run's files.
    from sandbox.grading import FunctionTestSpec, grade_function_tests

    spec = FunctionTestSpec.assertions(["assert f(2) == 7", "assert f(0) == 2"])
    report = grade_function_tests("def f(x):\n    return 3 * x + 1\n", spec, docker_backend.run)
    assert [t.passed for t in report.outcomes] == [True, False]
    assert report.outcomes[1].expected == "2" and report.outcomes[1].actual == "1"
