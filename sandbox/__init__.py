"""Isolated execution of untrusted programs: `run(RunRequest) -> RunResult`.

    from sandbox import Limits, RunRequest, Sandbox, Status, run

    result = run(RunRequest("python", "print(input()[::-1])", stdin="abc"))
    with Sandbox(PoolConfig(pool_size=4)) as box:          # a warm pool of your own
        result = box.run(RunRequest("cpp", source, limits=Limits(wall_time_s=2)))
    # languages: python, cpp, c, rust, go, javascript, java (sandbox/languages.py; describe()
    # lists those whose toolchain this host has, and asking for another is a clear ValueError)

`run` uses a process-wide warm pool started on first use (closed at exit), or the backend you
pass: `LocalBackend()` (a new jail per run), `Sandbox(...)` (warm pool), `DockerBackend(...)`.
All are thread-safe and give the same Status for the same program.

Statuses: ok, runtime_error (non-zero exit or a signal; exit_code/signal say which),
compile_error (compiler output in stderr), time_limit (wall or CPU), memory_limit (cgroup OOM
kill, or an allocation failure under the address-space limit), output_limit (stdout or stderr
over Limits.max_output_bytes; the program is killed and the first bytes kept), sandbox_error
(the sandbox itself failed; never the program's fault).

Measurements: wall_time_s and cpu_time_s are the program's own (compile excluded); cpu counts
every process of the run that was reaped; peak_memory_mib is the largest ru_maxrss among them
(ru_maxrss survives exec, so an exec'd binary reports at least the launcher's ~15 MiB).
A compiled language's binary is cached by (compiler command, source): running one program on
many inputs compiles it once.

Files and the result channel, for graders that run a trusted harness around untrusted code:
- `RunRequest.files` places extra files (str, or bytes for binary content) next to the program in
  the work dir (/work), each a read-only mount the program cannot change, rename or remove. The
  program itself is /work/solution.py (Python) or /work/main.cpp (C++); sys.path[0] is /work, as
  with `python3 f`.
- `RunRequest(result_fd=True)`: the program starts with a private pipe as fd 3
  (env ARBITER_RESULT_FD=3); what it writes there comes back as `RunResult.result_bytes`
  (up to 16 MiB), separate from exit code and stdout. The program, and every process it forks,
  start non-dumpable, so other processes of the run cannot open its /proc/PID/fd/3, read its
  memory or ptrace it. What stays the harness's job: fork the candidate's code into a child and
  `os.close(3)` there before running it (code in the same process can always reach fd 3),
  and judge the child's answers in the parent. For Python the harness is the `source` and
  runs in the jail's warm interpreter (no exec), so it keeps the non-dumpable flag; an exec'd
  harness would lose it.

Isolation model (local backend; details in sandbox/bwrap.py, sandbox/_zygote.py):
bubblewrap jail with new user/PID/net/mount/IPC/UTS/cgroup namespaces, host /usr read-only, no
/etc/shadow or any other host file but a few of /etc, empty environment, uid 65534 inside and
outside; per run fresh mount+PID namespaces with new tmpfs work dir, /tmp, /dev/shm and /proc;
the program has no capabilities, no_new_privs, a seccomp deny-list (namespaces, mount, ptrace,
bpf, keys, modules, io_uring, SysV IPC; sockets: unix, plus with `Limits.network` "private_loopback"
(the default) TCP/UDP and route netlink on the jail's own lo, never raw or packet), rlimits (CPU, address space,
file size, open files, processes, no core), cgroup memory+pids limits when the host has writable
cgroups (v1 or v2; `describe()` says), and the run's PID namespace is torn down when it ends, so
daemons and grandchildren never outlive it; descriptors it parked in flight are collected as it
ends, and a jail where anything of a run survives, or whose limits cannot be reset, is retired.
A compile is a run of its own, so a program never runs under the compiler's limits.
"""

from __future__ import annotations

import atexit
import os
import threading

from sandbox.api import Limits, Provenance, RunRequest, RunResult, Status
from sandbox.backend import Backend
from sandbox.bwrap import LocalBackend, LocalConfig, SandboxUnavailable
from sandbox.docker_backend import DockerBackend, DockerConfig
from sandbox.languages import available, toolchain_version
from sandbox.pool import PoolConfig, Sandbox

__all__ = [
    "Backend", "DockerBackend", "DockerConfig", "Limits", "LocalBackend", "LocalConfig", "PoolConfig", "Provenance",
    "RunRequest", "RunResult", "Sandbox", "SandboxUnavailable", "Status", "default_sandbox", "describe",
    "provenance", "run",
]

_default: tuple[int, Sandbox] | None = None  # (owner pid, pool)
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """This process's warm pool, started on first use and closed at interpreter exit.

    A forked child starts its own: the inherited pool's jails belong to the parent.
    """
    global _default
    with _default_lock:
        if _default is None or _default[0] != os.getpid():
            if _default is None:  # a forked child inherits the parent's atexit hook
                atexit.register(_close_default)
            _default = (os.getpid(), Sandbox(PoolConfig()))
        return _default[1]


def _close_default() -> None:
    # Only the owner closes its pool; a forked child must not tear down its parent's jails.
    if _default is not None and _default[0] == os.getpid():
        _default[1].close()


def run(request: RunRequest, backend: Backend | None = None) -> RunResult:
    """Run one request to completion; see the module docstring for statuses and channels."""
    return (backend or default_sandbox()).run(request)


def describe(backend: Backend | None = None) -> str:
    """What isolation and limit mechanisms are in force and which languages this host runs, in one line."""
    languages = ", ".join(f"{name} ({toolchain_version(name)})" for name in available())
    return f"{(backend or default_sandbox()).describe()}; languages: {languages}"


def provenance(language: str, limits: Limits, backend: Backend | None = None) -> Provenance:
    """What a verdict on a `language` program run under `limits` by `backend` rests on."""
    backend = backend or default_sandbox()
    return Provenance(backend.name, backend.describe(), language, toolchain_version(language), limits,
                      backend.image_id)
