"""The Docker backend: one throw-away container per run, same plan, same statuses as the local one.

Each run is a container of a tiny imported root file system (a few directories and symlinks)
with the host's /usr bind-mounted read-only, so it needs no registry. Guarantees: network
`none`, read-only root, tmpfs work dir and /tmp, memory (+swap) and pids limits, all
capabilities dropped, no-new-privileges, Docker's default seccomp profile plus ours, a non-root
uid of its own (so RLIMIT_NPROC counts only that run's processes), and the same in-container
launcher as the local jails (sandbox/_zygote.py in --container mode) as PID 1: it applies the
rlimits and the seccomp filter, runs the steps and sends stdout, stderr, the result fd and a
status back as frames on its stdout, which the program never holds.

Slower than the local backend (a container start is ~250-350 ms); for hosts where Docker is
the isolation boundary you already trust.
"""

from __future__ import annotations

import io
import itertools
import json
import socket
import struct
import tarfile
import threading
import time
from dataclasses import dataclass

from sandbox.api import RunRequest, RunResult, Status
from sandbox.bwrap import ETC_FILES, SUPERVISION_GRACE_S, ZYGOTE_SOURCE, SandboxUnavailable, zygote_spec
from sandbox.plan import MIB, RESULT_CAP_BYTES, Plan, StepOutcome, build_plan, classify, compile_then_run

FRAME = struct.Struct("!cI")
DOCKER_HEADER = struct.Struct(">BxxxL")


@dataclass(frozen=True)
class DockerConfig:
    """How to reach the engine and what the run's container is made of."""

    base_url: str | None = None  # None: DOCKER_HOST or the default socket
    image: str = "arbiter-sandbox-rootfs:2"
    python_path: str = "/usr/bin/python3"
    # Each run gets the next uid of this range, so per-uid process counts never mix runs.
    first_uid: int = 200_000
    uid_count: int = 10_000
    cgroup_overhead_mib: int = 64


def rootfs_tar() -> bytes:
    """A root file system with nothing in it but mount points and the usual /usr symlinks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("usr", "work", "tmp", "proc", "dev", "etc", "sys"):
            info = tarfile.TarInfo(name)
            # Docker copies a mount point's mode onto the tmpfs mounted there: sticky and open.
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name in ("tmp", "work") else 0o755
            tar.addfile(info)
        for name, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


class DockerBackend:
    """Runs each request in a fresh container; thread-safe."""

    name = "docker"

    def __init__(self, config: DockerConfig | None = None) -> None:
        try:
            import docker
        except ModuleNotFoundError as exc:
            raise SandboxUnavailable("the Docker backend needs the docker package: pip install 'arbiter[docker]'") \
                from exc

        self.config = config or DockerConfig()
        try:
            self.client = docker.DockerClient(base_url=self.config.base_url) if self.config.base_url \
                else docker.from_env()
            self.client.ping()
        except docker.errors.DockerException as exc:
            raise SandboxUnavailable(f"no Docker engine reachable: {exc}") from exc
        self._uids = itertools.cycle(range(self.config.first_uid, self.config.first_uid + self.config.uid_count))
        self._uid_lock = threading.Lock()
        self.image_id = self._ensure_image()

    def _ensure_image(self) -> str:
        """The image's id, importing the image first when the engine does not have it."""
        import docker

        try:
            return self.client.images.get(self.config.image).id
        except docker.errors.ImageNotFound:
            repository, _, tag = self.config.image.partition(":")
            self.client.api.import_image_from_data(rootfs_tar(), repository=repository, tag=tag or "latest")
            return self.client.images.get(self.config.image).id

    def describe(self) -> str:
        return (f"docker containers ({self.config.image}, network none, read-only root, no capabilities, "
                f"no-new-privileges, memory+pids limits)")

    def close(self) -> None:
        self.client.close()

    def run(self, request: RunRequest) -> RunResult:
        return compile_then_run(request, build_plan(request), lambda plan: self._run(request, plan))

    def _run(self, request: RunRequest, plan: Plan) -> tuple[RunResult, bytes | None]:
        """One container for one run: its result, and the artifact when the plan collects one."""
        with self._uid_lock:
            uid = next(self._uids)
        limits = request.limits
        memory = max(s.limits.memory_bytes for s in plan.steps) + self.config.cgroup_overhead_mib * MIB
        tmpfs = f"rw,exec,nosuid,nodev,size={plan.tmpfs_bytes},nr_inodes={plan.tmpfs_inodes},mode=1777"
        volumes = {"/usr": {"bind": "/usr", "mode": "ro"}}
        volumes |= {f"/etc/{name}": {"bind": f"/etc/{name}", "mode": "ro"} for name in ETC_FILES}
        container = self.client.containers.create(
            self.config.image, command=[self.config.python_path, "-I", "-c", ZYGOTE_SOURCE, "--container"],
            stdin_open=True, user=f"{uid}:{uid}", network_mode="none", read_only=True, hostname="sandbox",
            tmpfs={"/work": tmpfs, "/tmp": tmpfs}, mem_limit=memory, memswap_limit=memory,
            pids_limit=max(s.limits.nproc for s in plan.steps) + 8, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], volumes=volumes, working_dir="/work", environment=plan.env,
            ipc_mode="private", shm_size=plan.tmpfs_bytes,
        )
        try:
            return self._execute(container, request, plan, limits)
        finally:
            container.remove(force=True)

    def _execute(self, container, request: RunRequest, plan: Plan, limits) -> tuple[RunResult, bytes | None]:
        spec = {
            **zygote_spec(plan), "stdin_hex": request.stdin.encode().hex(), "result_fd": request.result_fd,
            "output_cap_bytes": limits.max_output_bytes, "result_cap_bytes": RESULT_CAP_BYTES,
            "collect": plan.collect,
        }
        attached = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        raw: socket.socket = attached._sock
        started = time.monotonic()
        container.start()
        raw.sendall(json.dumps(spec).encode())
        raw.shutdown(socket.SHUT_WR)
        deadline = started + sum(s.limits.wall_s for s in plan.steps) + SUPERVISION_GRACE_S + 2.0
        channels, launcher_stderr, timed_out = self._read_frames(raw, deadline, limits.max_output_bytes)
        raw.close()
        if timed_out:
            container.kill()
        container.wait(timeout=30)
        container.reload()
        oom = bool(container.attrs["State"].get("OOMKilled"))
        artifact = bytes(channels[b"a"]) if plan.collect and channels[b"s"] else None
        return self._result(request, plan, channels, launcher_stderr, timed_out, oom, time.monotonic() - started), \
            artifact

    @staticmethod
    def _result(request: RunRequest, plan: Plan, channels: dict[bytes, bytearray], launcher_stderr: bytes,
                timed_out: bool, oom: bool, wall: float) -> RunResult:
        limits = request.limits
        stdout = bytes(channels[b"o"][:limits.max_output_bytes]).decode("utf-8", "replace")
        stderr = bytes(channels[b"e"][:limits.max_output_bytes]).decode("utf-8", "replace")
        result_bytes = bytes(channels[b"r"]) if request.result_fd else None
        if not channels[b"s"]:
            if timed_out:
                return RunResult(Status.TIME_LIMIT, None, None, stdout, stderr, wall, 0.0, None,
                                 "container stopped at the wall-clock backstop", result_bytes)
            if oom:
                return RunResult(Status.MEMORY_LIMIT, None, None, stdout, stderr, wall, 0.0, None,
                                 "container killed by its memory limit", result_bytes)
            why = launcher_stderr.decode("utf-8", "replace")[-500:]
            return RunResult(Status.SANDBOX_ERROR, None, None, stdout, stderr, wall, 0.0, None,
                             f"container launcher failed: {why}", result_bytes)
        status = json.loads(bytes(channels[b"s"]))
        if "error" in status:
            return RunResult(Status.SANDBOX_ERROR, None, None, stdout, stderr, wall, 0.0, None,
                             f"sandbox set-up failed: {status['error']}", result_bytes)
        outcomes = [StepOutcome(exit_code=s["exit_code"], signal=s["signal"], timed_out=s["timed_out"],
                                cpu_s=s["cpu_s"], wall_s=s["wall_s"], peak_memory_mib=s["maxrss_kib"] / 1024)
                    for s in status["steps"]]
        verdict, detail = classify(plan, outcomes, output_exceeded=status["output_exceeded"], oom_killed=oom,
                                   stderr_tail=stderr[-4096:])
        last = outcomes[-1]
        return RunResult(verdict, last.exit_code, last.signal, stdout, stderr, last.wall_s, last.cpu_s,
                         last.peak_memory_mib, detail, result_bytes)

    @staticmethod
    def _read_frames(raw: socket.socket, deadline: float, cap: int) -> tuple[dict[bytes, bytearray], bytes, bool]:
        """Docker's stream multiplexing outside, the launcher's frames inside its stdout."""
        stream = bytearray()
        launcher_stderr = bytearray()
        inner = bytearray()
        channels = {b"o": bytearray(), b"e": bytearray(), b"r": bytearray(), b"s": bytearray(), b"a": bytearray()}
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return channels, bytes(launcher_stderr), True
            raw.settimeout(remaining)
            try:
                data = raw.recv(1 << 16)
            except TimeoutError:
                return channels, bytes(launcher_stderr), True
            if not data:
                return channels, bytes(launcher_stderr), False
            stream += data
            while len(stream) >= DOCKER_HEADER.size:
                kind, length = DOCKER_HEADER.unpack_from(stream)
                if len(stream) < DOCKER_HEADER.size + length:
                    break
                payload = stream[DOCKER_HEADER.size:DOCKER_HEADER.size + length]
                del stream[:DOCKER_HEADER.size + length]
                if kind == 1:
                    inner += payload
                elif len(launcher_stderr) < 65536:
                    launcher_stderr += payload
            while len(inner) >= FRAME.size:
                channel, length = FRAME.unpack_from(inner)
                if len(inner) < FRAME.size + length:
                    break
                target = channels.get(channel)
                if target is not None and len(target) <= max(cap, RESULT_CAP_BYTES):
                    target += inner[FRAME.size:FRAME.size + length]
                del inner[:FRAME.size + length]
