"""Runs every hostile program of programs/ through the sandbox and reports as JSON on stdout.

Meant to run inside the outer containment (containment.py): its own network namespace (so the
listeners below are "the host's loopback" for the sandbox), its own PID namespace, a cgroup cap.
Each program's first line says which statuses are acceptable (`# expect: a, b`); any line with
ESCAPED in the output marks a successful attack. The host-side facts (did anything reach our
listeners, is the outside process still alive, did a daemon outlive its run, did a file appear
outside the jail) are checked here, after the programs ran, and reported with the cases.

Programs that attack the jail's later runs (FOLLOWED) run again in a pool of one jail, each
followed there by honest samples that must pass; candidates that attack the grading referee
(GRADED) are graded through the function-test harness in that jail, each followed by an honest
candidate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sandbox import Limits, LocalConfig, PoolConfig, RunRequest, Sandbox
from sandbox.grading import FunctionTestSpec, GradingFault, grade_function_tests

PROGRAMS = Path(__file__).parent / "programs"
LIMITS = Limits(wall_time_s=2.0, cpu_time_s=1.0, memory_mib=256, max_processes=32,
                max_output_bytes=64 << 10, max_file_size_mib=16, compile_time_s=60)
DAEMON_MARKER = b"987.654"
HOST_PATHS = ["/usr/pwned", "/etc/pwned", "/pwned", "/bin/pwned", "/lib/pwned", "/work/pwned"]
PAIRED = {"plant_sitecustomize.py", "check_planted.py", "snoop_victim.py", "snoop_concurrent.py"}
LANGUAGE = {".py": "python", ".cpp": "cpp"}


# An honest program using all that the FOLLOWED programs attack: memory up to near its limit,
# descriptor passing, a pty, an abstract name (the one an earlier run parked, if it survived).
HONEST_FOLLOWER = """
import os, socket
left = len(open("/proc/net/unix").read().splitlines()) - 1
if left:
    print(f"ESCAPED: {left} unix sockets of an earlier run are still alive in the jail")
block = bytearray(150 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
a, b = socket.socketpair()
r, w = os.pipe()
socket.send_fds(a, [b"x"], [r, w])
socket.recv_fds(b, 1, 2)
probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    probe.connect("\\0arbiter-parked-name")
    print("ESCAPED: connected to a name an earlier run parked")
except OSError:
    pass
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind("\\0arbiter-parked-name")
for n in range(16):
    try:
        fd = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        continue
    try:
        if b"SECRET" in os.read(fd, 4096):
            print("ESCAPED: read a pty an earlier run wrote")
    except OSError:
        pass
master, slave = os.openpty()
os.write(slave, b"ping\\n")
assert os.read(master, 16).strip() == b"ping"
print("honest ok")
"""
# Smaller limits than the run before: the jail's memory limit goes down first.
SMALL_FOLLOWER = ("print('small honest ok')", Limits(wall_time_s=2.0, cpu_time_s=1.0, memory_mib=64))
FOLLOWED = ("park_stdout_in_flight.py", "park_memory_in_flight.py", "park_pty_in_flight.py",
            "park_abstract_name_in_flight.py", "exhaust_in_flight_quota.py", "compiled_forked_allocators.cpp")
GRADED_TESTS = FunctionTestSpec.assertions(["assert double(2) == 4", "assert double(3) == 6", "assert double(5) == 10"])
GRADED = {
    # A daemon of the contestant signalling the referee (same uid) all through the grading.
    "signal_referee": """
import os, signal, time
referee = os.getppid()
if os.fork() == 0:
    os.setsid()
    while True:
        for sig in (signal.SIGALRM, signal.SIGINT):
            try:
                os.kill(referee, sig)
            except OSError:
                os._exit(0)
        time.sleep(0.0005)

def double(x):
    return x + 1
""",
    # The contestant's ends of its pipes armed to signal the referee on every read and write, and
    # kept open by a daemon, so that the referee's own close in its cleanup fires them too.
    "async_pipes_signal_referee": """
import fcntl, os, signal, time
F_SETSIG = 10
for fd in range(3, 32):
    try:
        fcntl.fcntl(fd, fcntl.F_SETOWN, os.getppid())
        fcntl.fcntl(fd, F_SETSIG, signal.SIGALRM)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    except OSError:
        pass
if os.fork() == 0:
    os.setsid()
    time.sleep(60)

def double(x):
    return x + 1
""",
}
HONEST_CANDIDATE = "def double(x):\n    return 2 * x\n"


def load_cases() -> dict[str, tuple[str, str, list[str], Limits]]:
    """name -> (language, source, acceptable statuses, limits); a `limits:` line overrides some."""
    cases = {}
    for path in sorted(PROGRAMS.iterdir()):
        source = path.read_text()
        lines = source.splitlines()
        expected = [s.strip() for s in lines[0].split("expect:", 1)[1].split(",")]
        limits = LIMITS
        if "limits:" in lines[1]:
            pairs = (item.split("=") for item in lines[1].split("limits:", 1)[1].split() if "=" in item)
            limits = dataclasses.replace(LIMITS, **{key: float(value) for key, value in pairs})
        cases[path.name] = (LANGUAGE[path.suffix], source, expected, limits)
    return cases


class Listener:
    """Counts connections to a TCP port on 127.0.0.1 and to an abstract unix socket."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0arbiter-adversarial-listener")
        self.unix.listen()
        self.connections = 0
        for sock in (self.tcp, self.unix):
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def bring_up_loopback() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def run_case(box: Sandbox, name: str, case: tuple[str, str, list[str], Limits], port: int) -> dict:
    language, source, expected, limits = case
    request = RunRequest(language, source, limits=limits, files={"port.txt": str(port)},
                         result_fd=name == "harness_fd_forgery.py")
    try:
        result = box.run(request)
    except Exception as exc:  # the sandbox failing on a request is itself a finding, reported
        return {"expected": expected, "status": "exception", "detail": f"{type(exc).__name__}: {exc}",
                "stdout": "", "stderr": "", "result_bytes": None}
    return {
        "expected": expected, "status": result.status.value, "detail": result.detail,
        "stdout": result.stdout[:4000], "stderr": result.stderr[:4000],
        "result_bytes": result.result_bytes.decode("latin-1") if result.result_bytes is not None else None,
    }


def run_followed(box: Sandbox, cases: dict, port: int) -> list[dict]:
    """Each FOLLOWED program, then honest programs, in the one jail of `box`."""
    followers = [("honest", (HONEST_FOLLOWER, LIMITS)), ("small honest", SMALL_FOLLOWER)]
    runs = []
    for name in FOLLOWED:
        hostile = run_case(box, name, cases[name], port)
        after = {label: run_case(box, label, ("python", source, ["ok"], limits), port)
                 for label, (source, limits) in followers}
        runs.append({"hostile": name, "status": hostile["status"], "followers": after})
    return runs


def grade(box: Sandbox, code: str) -> dict:
    try:
        report = grade_function_tests(code, GRADED_TESTS, box.run, time_s=2.0)
    except GradingFault as exc:
        return {"fault": str(exc), "outcomes": []}
    return {"fault": None, "outcomes": [o.outcome.value for o in report.outcomes]}


def run_graded(box: Sandbox) -> dict:
    """Each GRADED candidate, then an honest one, in the one jail of `box`."""
    return {name: {"hostile": grade(box, code), "follower": grade(box, HONEST_CANDIDATE)}
            for name, code in GRADED.items()}


def marker_processes() -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if DAEMON_MARKER in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cgroup-parent", default="")
    parser.add_argument("--no-cgroups", action="store_true", help="limits by rlimits alone")
    args = parser.parse_args()
    bring_up_loopback()
    os.environ["ARBITER_CANARY"] = "canary-" + secrets.token_hex(8)
    listener = Listener()
    sentinel_uid = {"user": 65534, "group": 65534} if os.geteuid() == 0 and os.getuid() == 0 else {}
    sentinel = subprocess.Popen(["/usr/bin/sleep", "600"], **sentinel_uid)
    cases = load_cases()
    local = LocalConfig(use_cgroups=not args.no_cgroups, cgroup_parent=args.cgroup_parent or LocalConfig.cgroup_parent)
    results: dict[str, dict] = {}
    started = time.monotonic()
    with Sandbox(PoolConfig(pool_size=2, local=local)) as box:
        describe = box.describe()
        with ThreadPoolExecutor(2) as pool:
            futures = {name: pool.submit(run_case, box, name, case, listener.port)
                       for name, case in cases.items() if name not in PAIRED}
            results |= {name: f.result() for name, f in futures.items()}
        with ThreadPoolExecutor(2) as pool:  # victim and snooper at once, in the pool's two jails
            pair = {name: pool.submit(run_case, box, name, cases[name], listener.port)
                    for name in ("snoop_victim.py", "snoop_concurrent.py")}
            results |= {name: f.result() for name, f in pair.items()}
    # Planting and checking in one and the same jail, one after the other; then the programs
    # and candidates that attack later runs of their jail, each followed by honest ones there.
    with Sandbox(PoolConfig(pool_size=1, local=local)) as single:
        for name in ("plant_sitecustomize.py", "check_planted.py"):
            results[name] = run_case(single, name, cases[name], listener.port)
        followed = run_followed(single, cases, listener.port)
        graded = run_graded(single)
    time.sleep(0.2)
    host = {
        "describe": describe,
        "listener_connections": listener.connections,
        "sentinel_alive": sentinel.poll() is None,
        "marker_processes": marker_processes(),
        "host_paths_written": [p for p in HOST_PATHS if os.path.exists(p)],
        "seconds": round(time.monotonic() - started, 1),
    }
    sentinel.kill()
    json.dump({"cases": results, "followed": followed, "graded": graded, "host": host}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
