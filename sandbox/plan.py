"""What a request turns into (files and steps) and how step outcomes become a Status.

Shared by every backend so the same program gets the same verdict whichever runs it.
"""

from __future__ import annotations

import hashlib
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from sandbox.api import Limits, RunRequest, RunResult, Status
from sandbox.languages import Language, get_language

MIB = 1 << 20
COMPILE_MEMORY_MIB = 2048  # cc1plus on template-heavy code needs far more than a program's limit
COMPILE_OUTPUT_CAP_BYTES = 64 << 10
RESULT_CAP_BYTES = 16 << 20
TMPFS_INODES = 16384  # files per tmpfs: millions of empty files would cost kernel memory and time
# Markers the runtimes print when an allocation fails under RLIMIT_AS (no cgroup to count it).
MEMORY_MARKERS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory", "OutOfMemoryError",
                  "memory allocation of", "runtime: cannot allocate memory")


@dataclass(frozen=True)
class StepLimits:
    wall_s: float
    cpu_s: float
    memory_bytes: int  # what the step may use: the cgroup's limit
    fsize_bytes: int
    nofile: int
    nproc: int  # processes and threads
    address_space_bytes: int  # RLIMIT_AS: memory_bytes plus what the language's runtime only reserves
    stack_bytes: int  # RLIMIT_STACK: the address space, or the language's thread stack size


@dataclass(frozen=True)
class Step:
    kind: str  # "exec" | "python" (warm interpreter)
    argv: tuple[str, ...]
    path: str  # the source file, for "python"
    limits: StepLimits
    capture: bool  # compile steps: output kept aside and shown only on failure


@dataclass(frozen=True)
class Plan:
    files: tuple[tuple[str, bytes, int, bool], ...]  # (name, content, mode, read_only)
    steps: tuple[Step, ...]
    compiles: bool
    env: dict[str, str]
    tmpfs_bytes: int  # size of each of the run's tmpfs (/work, /tmp, /dev/shm)
    tmpfs_inodes: int
    network: str = "private_loopback"  # Limits.network: the seccomp filter the program runs under
    collect: str | None = None  # artifact to hand back after a successful compile step
    cache_key: str | None = None  # compile-cache key of (compiler command, source)

    def compile_only(self) -> Plan:
        """The compile step as a run of its own: the program's run then gets its own limits,
        never the compiler's (a jail's cgroup limit covers a whole run)."""
        return replace(self, steps=self.steps[:1])


def _step_limits(limits: Limits, language: Language, *, compile_step: bool) -> StepLimits:
    reserved = language.address_space_extra_mib * MIB
    stack = language.thread_stack_mib * MIB if language.thread_stack_mib else None
    if compile_step:
        memory = max(limits.memory_mib, COMPILE_MEMORY_MIB) * MIB
        return StepLimits(
            wall_s=limits.compile_time_s, cpu_s=limits.compile_time_s, memory_bytes=memory,
            fsize_bytes=max(limits.max_file_size_mib, 64) * MIB, nofile=256,
            nproc=max(limits.max_processes, 16) + language.extra_processes, address_space_bytes=memory + reserved,
            stack_bytes=stack or memory + reserved,
        )
    memory = limits.memory_mib * MIB
    return StepLimits(
        wall_s=limits.wall_time_s, cpu_s=limits.cpu_time_s, memory_bytes=memory,
        fsize_bytes=limits.max_file_size_mib * MIB, nofile=limits.max_open_files,
        nproc=limits.max_processes + language.extra_processes, address_space_bytes=memory + reserved,
        stack_bytes=stack or memory + reserved,
    )


def compile_key(request: RunRequest) -> str | None:
    """Cache key of what the compile step would produce, or None for interpreted languages."""
    language = get_language(request.language)
    if language.compile_argv is None or language.artifact is None:
        return None
    digest = hashlib.sha256("\0".join(language.compile_argv).encode() + b"\0" + request.source.encode())
    return f"{language.name}:{digest.hexdigest()}"


def build_plan(request: RunRequest, *, warm_python: bool = True, artifact: bytes | None = None) -> Plan:
    """Files and steps for a request; with `artifact` (a cached compile), no compile step."""
    language = get_language(request.language)
    for name in request.files:
        if not name or name.startswith("/") or ".." in name.split("/") or name in (
                language.source_file, language.artifact):
            raise ValueError(f"RunRequest.files: bad file name {name!r} (relative, no '..', not the source file)")
    files = [(language.source_file, request.source.encode(), 0o444, True)]
    files += [(name, text.encode() if isinstance(text, str) else bytes(text), 0o444, True)
              for name, text in sorted(request.files.items())]
    steps = []
    compiles = language.compile_argv is not None and artifact is None
    if artifact is not None:
        files.append((language.artifact, artifact, 0o555, True))
    elif language.compile_argv is not None:
        steps.append(Step("exec", language.compile_argv, language.source_file,
                          _step_limits(request.limits, language, compile_step=True), capture=True))
    kind = "python" if (language.warm_python and warm_python) else "exec"
    def sized(text: str) -> str:  # the run's memory limit, where a runtime takes it as a flag
        return text.replace("{memory_mib}", str(request.limits.memory_mib))

    run_argv = tuple(sized(arg) for arg in language.run_argv)
    steps.append(Step(kind, run_argv, language.source_file,
                      _step_limits(request.limits, language, compile_step=False), capture=False))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
           **{name: sized(value) for name, value in language.env.items()}}
    if request.result_fd:
        env["ARBITER_RESULT_FD"] = "3"
    key = compile_key(request) if compiles else None
    return Plan(
        files=tuple(files), steps=tuple(steps), compiles=compiles, env=env,
        tmpfs_bytes=max(64, 4 * request.limits.max_file_size_mib) * MIB, tmpfs_inodes=TMPFS_INODES,
        network=request.limits.network,
        collect=language.artifact if key else None, cache_key=key,
    )


def compile_then_run(request: RunRequest, plan: Plan, run: Callable[[Plan], tuple[RunResult, bytes | None]],
                     cache: CompileCache | None = None) -> RunResult:
    """Carry out `plan` with `run` (one run of a backend: its result and the collected artifact).

    A compile is a run of its own, and the program then runs from its artifact: each step is
    under its own limits, since a jail's or a container's memory limit covers a whole run.
    """
    if not plan.compiles:
        return run(plan)[0]
    compiled, artifact = run(plan.compile_only())
    if compiled.status is not Status.OK or artifact is None:
        return compiled
    if cache is not None and plan.cache_key:
        cache.put(plan.cache_key, artifact)
    return run(build_plan(request, artifact=artifact))[0]


class CompileCache:
    """Compiled artifacts by (compiler command, source), least recently used out first; thread-safe.

    Only a successful compile of exactly this source under exactly this command is stored, so a
    program can only ever find its own binary here.
    """

    def __init__(self, max_bytes: int = 256 * MIB) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str | None) -> bytes | None:
        if key is None:
            return None
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _old_key, old = self._items.popitem(last=False)
                self._size -= len(old)


@dataclass(frozen=True)
class StepOutcome:
    exit_code: int | None
    signal: int | None
    timed_out: bool
    cpu_s: float
    wall_s: float
    peak_memory_mib: float | None


def classify(plan: Plan, outcomes: list[StepOutcome], *, output_exceeded: bool, oom_killed: bool,
             stderr_tail: str) -> tuple[Status, str]:
    """The Status of a run from its step outcomes; the first failing step decides."""
    if plan.compiles:
        compiled = outcomes[0]
        if compiled.timed_out or compiled.exit_code != 0:
            why = "compilation timed out" if compiled.timed_out else f"compiler exited {compiled.exit_code}"
            return Status.COMPILE_ERROR, why
        if len(outcomes) < len(plan.steps):
            return Status.SANDBOX_ERROR, "program did not run after compiling"
    run = outcomes[-1]
    limits = plan.steps[-1].limits
    if output_exceeded:
        return Status.OUTPUT_LIMIT, "output exceeded max_output_bytes"
    if run.timed_out:
        return Status.TIME_LIMIT, f"wall-clock limit {limits.wall_s:g}s"
    if run.signal == signal.SIGXCPU or (run.signal == signal.SIGKILL and run.cpu_s >= limits.cpu_s):
        return Status.TIME_LIMIT, f"CPU-time limit {limits.cpu_s:g}s"
    if oom_killed:
        return Status.MEMORY_LIMIT, "killed by the memory cgroup"
    if run.exit_code == 0:
        return Status.OK, ""
    if any(marker in stderr_tail for marker in MEMORY_MARKERS):
        return Status.MEMORY_LIMIT, "allocation failed under the address-space limit"
    if run.signal is not None:
        try:
            name = signal.Signals(run.signal).name
        except ValueError:
            name = f"signal {run.signal}"
        return Status.RUNTIME_ERROR, f"killed by {name}"
    return Status.RUNTIME_ERROR, f"exit code {run.exit_code}"
