"""The outer containment the adversarial suite runs in, so a sandbox bug cannot reach the host.

    python tests/adversarial/containment.py -- python tests/adversarial/contained.py

Layers, outermost first: a cgroup capping memory and processes of everything inside (cgroup v1
memory+pids, when writable; the sandbox's own per-jail cgroups are created inside it), then
`unshare` into new network (loopback only, brought up inside), PID (everything is killed when
the command exits) and mount namespaces; as a non-root user also a user namespace. Nothing
inside can address anything but its own loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

CGROUP_V1 = Path("/sys/fs/cgroup")
MEMORY_CAP_MIB = 3072
PIDS_CAP = 2048


def _make_cgroup(name: str) -> list[Path] | None:
    dirs = [CGROUP_V1 / "memory" / name, CGROUP_V1 / "pids" / name]
    try:
        for d in dirs:
            d.mkdir()
        (dirs[0] / "memory.limit_in_bytes").write_text(str(MEMORY_CAP_MIB << 20))
        with contextlib.suppress(OSError):
            (dirs[0] / "memory.memsw.limit_in_bytes").write_text(str(MEMORY_CAP_MIB << 20))
        (dirs[1] / "pids.max").write_text(str(PIDS_CAP))
    except OSError:
        _remove_cgroup(dirs)
        return None
    return dirs


def _remove_cgroup(dirs: list[Path]) -> None:
    for d in dirs:
        with contextlib.suppress(OSError):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
    for d in dirs:
        # Jail groups nested inside go first; rmdir only removes empty groups.
        for sub in sorted(d.glob("**/"), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                sub.rmdir()


def contained_command(command: list[str]) -> tuple[list[str], list[Path] | None, str]:
    """The full argv that runs `command` contained, the cgroup dirs to clean up, and a note."""
    if shutil.which("unshare") is None:
        raise RuntimeError("util-linux unshare is not installed")
    name = f"arbiter-adversarial-{uuid.uuid4().hex[:8]}"
    namespaces = ["unshare", "--net", "--pid", "--fork", "--mount", "--mount-proc", "--kill-child"]
    if os.geteuid() != 0:
        namespaces.insert(1, "--map-root-user")
    dirs = _make_cgroup(name) if os.geteuid() == 0 else None
    if dirs is None:
        note = "outer cap: namespaces only (no writable cgroup v1 memory+pids)"
        return [*namespaces, "--", *command], None, note
    join = " && ".join(f"echo $$ > {d}/cgroup.procs" for d in dirs)
    argv = ["sh", "-c", f'{join} && exec "$@"', "sh", *namespaces, "--", *command,
            "--cgroup-parent", f"{name}/jails"]
    return argv, dirs, f"outer cap: cgroup {name} memory {MEMORY_CAP_MIB} MiB, {PIDS_CAP} pids"


def run_contained(command: list[str], timeout_s: float) -> tuple[subprocess.CompletedProcess, str]:
    argv, dirs, note = contained_command(command)
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s), note
    finally:
        if dirs is not None:
            _remove_cgroup(dirs)


if __name__ == "__main__":
    separator = sys.argv.index("--") if "--" in sys.argv else 0
    completed, note = run_contained(sys.argv[separator + 1:], timeout_s=600)
    print(note, file=sys.stderr)
    sys.stdout.write(completed.stdout)
    sys.stderr.write(completed.stderr)
    sys.exit(completed.returncode)
