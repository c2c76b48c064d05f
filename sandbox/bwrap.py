"""The local backend: bubblewrap jails, each with a trusted launcher (sandbox/_zygote.py) inside.

A jail is one `bwrap` process tree: new user, PID, network, mount, IPC, UTS and cgroup namespaces
(`--unshare-all`), the host's /usr read-only and nothing else of the host's filesystem but a few
files of /etc, a minimal /dev, its own /proc, a network namespace of its own holding only `lo` (bwrap brings it
up: a program's 127.0.0.1 is the jail's, never the host's), an empty environment, and
in-jail uid/gid 65534. The host process that execs bwrap drops to uid 65534 first when it is root,
so RLIMIT_NPROC is enforced (the kernel exempts host root) and the user namespace maps to nobody.

Inside, the launcher runs each request in fresh mount and PID namespaces of its own (fresh tmpfs
work dir, /tmp and /dev/shm, fresh /proc; see _zygote.py), so a jail can serve many runs in turn
without one run seeing anything of another. `Jail` is that handle; `LocalBackend` runs each
request in a new jail (cold); `sandbox.pool.Sandbox` keeps jails started and reuses them (warm).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import cgroups
from sandbox.api import RunRequest, RunResult, Status
from sandbox.grading.harness import MODULES as HARNESS_MODULES
from sandbox.plan import (
    COMPILE_OUTPUT_CAP_BYTES,
    MIB,
    RESULT_CAP_BYTES,
    CompileCache,
    Plan,
    StepOutcome,
    build_plan,
    classify,
    compile_key,
    compile_then_run,
)
from sandbox.seccomp_policy import compiled_bpf

log = logging.getLogger(__name__)

SANDBOX_UID = 65534
ZYGOTE_SOURCE = (Path(__file__).parent / "_zygote.py").read_text()
# Files of the host's /etc a program may legitimately read: the dynamic loader's cache,
# Debian's interpreter config and alternatives symlinks (g++ -> g++-12), time zone.
# The JDK's configuration lives in /etc too (its lib/jvm.cfg and conf/ are symlinks there).
ETC_FILES = ("ld.so.cache", "ld.so.conf", "python3.11", "alternatives", "localtime",
             *sorted(p.name for p in Path("/etc").glob("java-*-openjdk")))
# The jail's own account database: the sandbox user only, nothing of the host's users.
ETC_DATA = {
    "/etc/passwd": b"nobody:x:65534:65534:sandbox:/tmp:/usr/sbin/nologin\n",
    "/etc/group": b"nogroup:x:65534:\n",
}
JAIL_START_TIMEOUT_S = 20.0
# Set-up and teardown a run may take beyond its own limits before the host gives up on the jail.
SUPERVISION_GRACE_S = 5.0
# Memory a jail may hold after a run beyond what it held when it started (the page cache aside)
# before it is retired: more means something of the run is still alive and charged to it.
RESIDENT_SLACK_MIB = 32
RESIDENT_SETTLE_S = 0.25


class SandboxUnavailable(RuntimeError):
    """The local backend cannot start jails here (no bwrap, no user namespaces)."""


class JailResetFailed(RuntimeError):
    """A jail could not be made ready for the next run (its limits would not go back): the jail
    is retired and the run never started, so the run belongs in another jail."""


@dataclass(frozen=True)
class LocalConfig:
    """Where the jail's pieces come from; the defaults fit a Debian/Ubuntu host or image."""

    bwrap_path: str = "/usr/bin/bwrap"
    python_path: str = "/usr/bin/python3"
    # A uid the host switches to before exec'ing bwrap when it runs as root; never 0.
    host_uid: int = SANDBOX_UID
    use_cgroups: bool = True
    # Where jails' cgroups go, relative to each cgroup hierarchy's root; nest it inside another
    # group to put a cap over all jails together (the adversarial suite does).
    cgroup_parent: str = cgroups.GROUP_PREFIX
    # Extra per-jail cgroup memory for the launcher processes, beyond the program's limit.
    cgroup_overhead_mib: int = 64

    def __post_init__(self) -> None:
        if self.host_uid == 0:
            raise ValueError("LocalConfig.host_uid must not be 0")


@dataclass
class _Capture:
    cap: int
    data: bytearray = field(default_factory=bytearray)
    exceeded: bool = False


def _jail_argv(config: LocalConfig, ctrl_fd: int, options: list[str]) -> list[str]:
    argv = [
        config.bwrap_path, *options, "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
        # The launcher needs these two inside the jail's own user namespace to build each run's
        # namespaces and drop the bounding set; programs never hold any capability.
        "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETPCAP",
        "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
        "--setenv", "HOME", "/tmp",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/work",
    ]
    for name in ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--remount-ro", "/", "--chdir", "/work",
             config.python_path, "-I", "-c", ZYGOTE_SOURCE, str(ctrl_fd)]
    return argv


def zygote_spec(plan: Plan, blob: bytearray | None = None) -> dict[str, object]:
    """The part of the zygote's spec (sandbox/_zygote.py) that comes from the plan, the same in every backend.

    With `blob`, file contents are appended to it raw and the spec holds their offsets (the local
    backend sends both in one memfd: no hex to encode, escape as JSON and decode per run);
    without, they travel hex-encoded inside the spec.
    """
    files: list[dict[str, object]] = []
    for name, data, mode, ro in plan.files:
        item: dict[str, object] = {"name": name, "mode": mode, "read_only": ro}
        if blob is None:
            item["hex"] = data.hex()
        else:
            item["offset"], item["size"] = len(blob), len(data)
            blob += data
        files.append(item)
    return {
        "files": files,
        "steps": [{
            "kind": s.kind, "argv": list(s.argv), "path": s.path, "capture": s.capture, "wall_s": s.limits.wall_s,
            "limits": {"cpu_s": s.limits.cpu_s, "as_bytes": s.limits.address_space_bytes,
                       "fsize_bytes": s.limits.fsize_bytes, "nofile": s.limits.nofile, "nproc": s.limits.nproc,
                       "stack_bytes": s.limits.stack_bytes},
        } for s in plan.steps],
        "env": plan.env, "work_dir": "/work", "bpf_hex": compiled_bpf(plan.network).hex(),
        "capture_cap_bytes": COMPILE_OUTPUT_CAP_BYTES,
    }


def _is_host_root() -> bool:
    """Root of the initial user namespace: the kernel exempts it from RLIMIT_NPROC, so switch.

    Root inside a user namespace (an unprivileged container mapping only itself) has no other
    uid to switch to and needs none: its processes count against its real uid.
    """
    if os.geteuid() != 0:
        return False
    try:
        return Path("/proc/self/uid_map").read_text().split()[:3] == ["0", "0", "4294967295"]
    except OSError:
        return True


def _send(sock: socket.socket, obj: dict, fds: list[int]) -> None:
    payload = json.dumps(obj).encode()
    message = struct.pack("!I", len(payload)) + payload
    socket.send_fds(sock, [message], fds)


class _Reader:
    """Framed JSON messages from the zygote, fed by the caller's selector loop."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[dict]:
        self.buffer += data
        messages = []
        while len(self.buffer) >= 4:
            (length,) = struct.unpack("!I", self.buffer[:4])
            if len(self.buffer) < 4 + length:
                break
            messages.append(json.loads(self.buffer[4:4 + length]))
            self.buffer = self.buffer[4 + length:]
        return messages


def _take(fd: int, capture: _Capture) -> int | None:
    """Read what the pipe `fd` holds now into `capture`, kept up to its cap: the bytes read,
    0 at end of file, None when nothing is there (the read ends are non-blocking)."""
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return None
    room = capture.cap + 1 - len(capture.data)
    if room > 0:
        capture.data += data[:room]
    if len(capture.data) > capture.cap:
        capture.exceeded = True
    return len(data)


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class Jail:
    """One started bwrap jail with its launcher waiting for runs. Not thread-safe: one run at a time."""

    def __init__(self, config: LocalConfig, cgroup_manager: cgroups.CgroupManager | None) -> None:
        self.config = config
        self.cgroup: cgroups.JailCgroup | None = None
        self.runs = 0
        self.broken = False
        self._cgroup_limits: tuple[int, int] | None = None
        self._reader = _Reader()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = parent
        info_r, info_w = os.pipe()
        data_fds = {path: _memfd(path, content) for path, content in ETC_DATA.items()}
        try:
            self._proc = self._popen(config, child, info_w, data_fds)
        finally:
            child.close()
            os.close(info_w)
            for fd in data_fds.values():
                os.close(fd)
        try:
            with os.fdopen(info_r, "rb") as info:
                info_text = info.read()
            child_pid = json.loads(info_text)["child-pid"] if info_text else None
            if child_pid is None:
                raise SandboxUnavailable(f"bwrap failed to start (exit {self._proc.wait(5)})")
            self.child_pid = int(child_pid)
            if cgroup_manager is not None:
                self.cgroup = cgroup_manager.create()
                # Before the launcher has forked anything: everything it starts is born inside.
                self.cgroup.add(self._proc.pid)
                self.cgroup.add(self.child_pid)
            # The launcher's first message: the modules it imports before it forks any run.
            _send(self._sock, {"op": "preload", "modules": list(HARNESS_MODULES.items())}, [])
            ready = self._wait_message(JAIL_START_TIMEOUT_S)
            if ready is None or ready.get("op") != "ready":
                raise SandboxUnavailable(f"jail launcher did not start: {ready}")
            self._resident_baseline = self.cgroup.resident_bytes() if self.cgroup is not None else 0
        except BaseException:
            self.destroy()
            raise

    def _popen(self, config: LocalConfig, child: socket.socket, info_w: int,
               data_fds: dict[str, int]) -> subprocess.Popen:
        options = ["--info-fd", str(info_w)]
        for path, fd in data_fds.items():
            options += ["--ro-bind-data", str(fd), path]
        ctrl = child.fileno()
        argv = _jail_argv(config, ctrl, options)
        as_root = _is_host_root()
        return subprocess.Popen(
            argv, env={}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            pass_fds=(ctrl, info_w, *data_fds.values()), close_fds=True,
            user=config.host_uid if as_root else None, group=config.host_uid if as_root else None,
            extra_groups=[] if as_root else None, start_new_session=True,
        )

    def _wait_message(self, timeout_s: float) -> dict | None:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                return None
            finally:
                self._sock.settimeout(None)
            if not data:
                return None
            messages = self._reader.feed(data)
            if messages:
                return messages[0]

    @property
    def alive(self) -> bool:
        return not self.broken and self._proc.poll() is None

    def cpu_time_s(self) -> float:
        """CPU seconds of the launcher and of every run process it has reaped (0 once it is gone)."""
        try:
            stat = Path(f"/proc/{self.child_pid}/stat").read_text()
        except (AttributeError, OSError):
            return 0.0
        utime, stime, cutime, cstime = stat.rsplit(")", 1)[1].split()[11:15]
        return (int(utime) + int(stime) + int(cutime) + int(cstime)) / os.sysconf("SC_CLK_TCK")

    def execute(self, request: RunRequest, plan: Plan, compile_cache: CompileCache | None = None) -> RunResult:
        """Run `request` by `plan` (a compile is a run of its own, see compile_then_run); raises
        JailResetFailed, the jail retired, when it cannot be made ready for a run."""
        self.runs += 1
        return compile_then_run(request, plan, lambda step_plan: self._run(request, step_plan), compile_cache)

    def _reset_cgroup(self, plan: Plan) -> None:
        assert self.cgroup is not None
        memory = max(s.limits.memory_bytes for s in plan.steps) + self.config.cgroup_overhead_mib * MIB
        wanted = (memory, max(s.limits.nproc for s in plan.steps) + 8)
        # Only the host writes these files, so a jail whose runs keep the same limits (a grading
        # batch) skips the half-dozen cgroupfs reads and writes per run.
        if wanted == self._cgroup_limits:
            return
        try:
            self.cgroup.set_limits(*wanted)
        except OSError as exc:  # e.g. EBUSY: more is still charged than the new limit allows
            self.broken = True
            raise JailResetFailed(f"cannot set the jail's limits for the next run: {exc}") from exc
        self._cgroup_limits = wanted

    def _check_clean(self, done: dict) -> None:
        """Retire the jail when the run left anything behind that could reach a later run."""
        if done.get("in_flight"):
            self.broken = True
            log.warning("sandbox: a run left %d unix sockets in flight; jail retired", done["in_flight"])
        elif self.cgroup is not None:
            # What the run's last processes or the collector freed may be uncharged a moment later.
            settle_by = time.monotonic() + RESIDENT_SETTLE_S
            while (resident := self.cgroup.resident_bytes()) > self._resident_baseline + RESIDENT_SLACK_MIB * MIB:
                if time.monotonic() > settle_by:
                    self.broken = True
                    log.warning("sandbox: %d MiB still charged to the jail after a run (baseline %d MiB); "
                                "jail retired", resident // MIB, self._resident_baseline // MIB)
                    return
                time.sleep(0.005)

    def _run(self, request: RunRequest, plan: Plan) -> tuple[RunResult, bytes | None]:
        """One run in this jail: its result, and the artifact when the plan collects one."""
        started = time.monotonic()
        limits = request.limits
        outputs = {"stdout": _Capture(limits.max_output_bytes), "stderr": _Capture(limits.max_output_bytes)}
        result_capture = _Capture(RESULT_CAP_BYTES) if request.result_fd else None
        oom_before = 0
        if self.cgroup is not None:
            self._reset_cgroup(plan)
            oom_before = self.cgroup.oom_kills()
        blob = bytearray()
        spec = {**zygote_spec(plan, blob), "tmpfs_bytes": plan.tmpfs_bytes, "collect": plan.collect,
                "tmpfs_inodes": plan.tmpfs_inodes}
        total_wall = sum(s.limits.wall_s for s in plan.steps)
        local_fds: list[int] = []
        remote_fds: list[int] = []
        artifact_fd = None
        artifact = None
        try:
            fd_names = ["spec", "stdin", "stdout", "stderr"] + (["result"] if result_capture else [])
            spec["fd_names"] = fd_names
            remote_fds.append(-1)  # the spec goes first, once it is complete
            remote_fds.append(_memfd("stdin", request.stdin.encode()))
            pipes: dict[int, _Capture] = {}
            wanted = [outputs["stdout"], outputs["stderr"]] + ([result_capture] if result_capture else [])
            for capture in wanted:
                r, w = os.pipe()
                os.set_blocking(r, False)
                local_fds.append(r)
                remote_fds.append(w)
                pipes[r] = capture
            if plan.collect is not None:
                artifact_fd = os.memfd_create("artifact")
                fd_names.append("artifact")
                remote_fds.append(artifact_fd)
            header = json.dumps(spec).encode()
            remote_fds[0] = _memfd("spec", struct.pack("!I", len(header)) + header + blob)
            message: dict[str, object] = {"op": "run", "backstop_s": total_wall + 1.0}
            if not plan.compiles:
                # One step needs no run init between the launcher and the program (see _zygote.py).
                message["wall_s"] = plan.steps[0].limits.wall_s
            _send(self._sock, message, remote_fds)
            for fd in remote_fds:
                if fd != artifact_fd:
                    os.close(fd)
            remote_fds = []
            done = self._supervise(pipes, total_wall + 1.0 + SUPERVISION_GRACE_S)
            if artifact_fd is not None and done:
                artifact = os.pread(artifact_fd, os.lseek(artifact_fd, 0, os.SEEK_END), 0)
        finally:
            for fd in remote_fds + local_fds + ([artifact_fd] if artifact_fd is not None else []):
                with contextlib.suppress(OSError):
                    os.close(fd)
        if done is not None:
            self._check_clean(done)
        return self._result(plan, done, outputs, result_capture, oom_before, time.monotonic() - started), artifact

    def _result(self, plan: Plan, done: dict | None, outputs: dict[str, _Capture], result_capture: _Capture | None,
                oom_before: int, wall: float) -> RunResult:
        cap = outputs["stdout"].cap
        stdout = bytes(outputs["stdout"].data[:cap]).decode("utf-8", "replace")
        stderr = bytes(outputs["stderr"].data[:cap]).decode("utf-8", "replace")
        result_bytes = bytes(result_capture.data[:RESULT_CAP_BYTES]) if result_capture else None
        exceeded = any(c.exceeded for c in (*outputs.values(), *([result_capture] if result_capture else [])))
        if done is None:
            self.broken = True
            if self.cgroup is not None and self.cgroup.oom_kills() > oom_before:
                return RunResult(Status.MEMORY_LIMIT, None, signal.SIGKILL, stdout, stderr, wall, 0.0, None,
                                 "the memory cgroup killed the jail", result_bytes)
            return RunResult(Status.SANDBOX_ERROR, None, None, stdout, stderr, wall, 0.0, None,
                             "jail launcher stopped answering", result_bytes)
        if not done.get("steps") and done.get("killed"):
            # Stopped from outside before it could report: the reason is the verdict.
            status, detail = ((Status.OUTPUT_LIMIT, "output exceeded max_output_bytes") if exceeded
                              else (Status.TIME_LIMIT, "stopped by the launcher's backstop deadline"))
            return RunResult(status, None, signal.SIGKILL, stdout, stderr, wall, 0.0, None, detail, result_bytes)
        if "error" in done and not done.get("steps"):
            self.broken = True
            return RunResult(Status.SANDBOX_ERROR, None, None, stdout, stderr, wall, 0.0, None,
                             f"sandbox set-up failed: {done['error']}", result_bytes)
        outcomes = [StepOutcome(exit_code=s["exit_code"], signal=s["signal"], timed_out=s["timed_out"],
                                cpu_s=s["cpu_s"], wall_s=s["wall_s"], peak_memory_mib=s["maxrss_kib"] / 1024)
                    for s in done["steps"]]
        if not outcomes:
            return RunResult(Status.SANDBOX_ERROR, None, None, stdout, stderr, wall, 0.0, None,
                             f"run was stopped before it started ({done.get('killed')})", result_bytes)
        oom = self.cgroup is not None and self.cgroup.oom_kills() > oom_before
        status, detail = classify(plan, outcomes, output_exceeded=exceeded, oom_killed=oom, stderr_tail=stderr[-4096:])
        last = outcomes[-1]
        return RunResult(status, last.exit_code, last.signal, stdout, stderr, last.wall_s, last.cpu_s,
                         last.peak_memory_mib, detail, result_bytes)

    def _supervise(self, pipes: dict[int, _Capture], timeout_s: float) -> dict | None:
        """Drain the program's pipes under their caps until the launcher reports, then take what they hold.

        The launcher reports once every process of the run is gone, so the pipes then hold all
        that the run wrote. A pipe still open at that point is held by a descriptor parked in
        flight rather than by a writer: its end of file may never come, and is not waited for.
        """
        deadline = time.monotonic() + timeout_s
        kill_sent = False
        with selectors.DefaultSelector() as selector:
            for fd in pipes:
                selector.register(fd, selectors.EVENT_READ)
            selector.register(self._sock, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                for key, _ in selector.select(remaining):
                    if key.fileobj is self._sock:
                        data = self._sock.recv(65536)
                        if not data:
                            return None
                        for message in self._reader.feed(data):
                            if message.get("op") == "done":
                                for fd, capture in pipes.items():
                                    while _take(fd, capture):
                                        pass
                                return message
                        continue
                    capture = pipes[key.fd]
                    if _take(key.fd, capture) == 0:
                        selector.unregister(key.fd)
                    if capture.exceeded and not kill_sent:
                        kill_sent = True
                        _send(self._sock, {"op": "kill", "reason": "output"}, [])

    def destroy(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError):
            self._sock.close()
        # The launcher first: bwrap then reaps it and exits, so no zombie is left in the cgroup.
        child_pid = getattr(self, "child_pid", None)
        if child_pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child_pid, signal.SIGKILL)
        if hasattr(self, "_proc"):
            try:
                self._proc.wait(2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self.cgroup is not None:
            self.cgroup.remove()


class LocalBackend:
    """Runs each request in a jail of its own: correct everywhere, ~50-100 ms slower than the pool."""

    name = "bwrap"
    image_id = None  # jails run the host's /usr

    def __init__(self, config: LocalConfig | None = None) -> None:
        self.config = config or LocalConfig()
        if shutil.which(self.config.bwrap_path) is None:
            raise SandboxUnavailable(f"bubblewrap not found at {self.config.bwrap_path}")
        self.cgroup_manager = cgroups.detect(self.config.cgroup_parent) if self.config.use_cgroups else None
        self.compile_cache = CompileCache()

    def describe(self) -> str:
        limits = self.cgroup_manager.describe() if self.cgroup_manager else "rlimits only (no writable cgroups)"
        return f"bwrap jails, seccomp deny-list, memory/pids limits: {limits}"

    def new_jail(self) -> Jail:
        return Jail(self.config, self.cgroup_manager)

    def close(self) -> None:
        """Nothing to stop: every jail of this backend ends with its run."""

    def run(self, request: RunRequest) -> RunResult:
        plan = build_plan(request, artifact=self.compile_cache.get(compile_key(request)))
        jail = self.new_jail()
        try:
            return jail.execute(request, plan, self.compile_cache)
        except JailResetFailed as exc:  # a new jail that cannot be set up is the sandbox's fault
            return RunResult(Status.SANDBOX_ERROR, None, None, "", "", 0.0, 0.0, None, str(exc))
        finally:
            jail.destroy()
