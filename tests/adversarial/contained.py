"""Runs every hostile program of programs/ through the sandbox and reports as JSON on stdout.

Meant to run inside the outer containment (containment.py): its own network namespace (so the
listeners below are "the host's loopback" for the sandbox), its own PID namespace, a cgroup cap.
Each program's first line says which statuses are acceptable (`# expect: a, b`); any line with
ESCAPED in the output marks a successful attack. The host-side facts (did anything reach our
listeners, is the outside process still alive, did a daemon outlive its run, did a file appear
outside the jail) are checked here, after the programs ran, and reported with the cases.
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

PROGRAMS = Path(__file__).parent / "programs"
LIMITS = Limits(wall_time_s=2.0, cpu_time_s=1.0, memory_mib=256, max_processes=32,
                max_output_bytes=64 << 10, max_file_size_mib=16, compile_time_s=60)
DAEMON_MARKER = b"987.654"
HOST_PATHS = ["/usr/pwned", "/etc/pwned", "/pwned", "/bin/pwned", "/lib/pwned", "/work/pwned"]
PAIRED = {"plant_sitecustomize.py", "check_planted.py", "snoop_victim.py", "snoop_concurrent.py"}
LANGUAGE = {".py": "python", ".cpp": "cpp"}


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
    result = box.run(request)
    return {
        "expected": expected, "status": result.status.value, "detail": result.detail,
        "stdout": result.stdout[:4000], "stderr": result.stderr[:4000],
        "result_bytes": result.result_bytes.decode("latin-1") if result.result_bytes is not None else None,
    }


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
    # Planting and checking in one and the same jail, one after the other.
    with Sandbox(PoolConfig(pool_size=1, local=local)) as single:
        for name in ("plant_sitecustomize.py", "check_planted.py"):
            results[name] = run_case(single, name, cases[name], listener.port)
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
    json.dump({"cases": results, "host": host}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
