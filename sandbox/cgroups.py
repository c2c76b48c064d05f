"""Memory and process-count limits for a whole jail through cgroups, where the host allows it.

rlimits bound each process; a cgroup bounds their sum (a fork bomb of allocators, tmpfs pages)
and counts OOM kills, which is how a memory verdict is told from a crash. Detection, in order:
cgroup v1 with writable `memory` and `pids` hierarchies (what this machine has), then cgroup v2
with both controllers enabled in a writable subtree; otherwise None and the sandbox runs on
rlimits alone. `describe()` in sandbox/__init__.py reports which one is in force.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")  # v1's hierarchies and v2's unified one are both mounted here
GROUP_PREFIX = "arbiter-sandbox"


@dataclass(frozen=True)
class JailCgroup:
    """The cgroup(s) of one jail; every process of the jail is moved in before it runs anything."""

    version: int
    dirs: tuple[Path, ...]  # v1: (memory dir, pids dir); v2: (the one dir,)

    def add(self, pid: int) -> None:
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def set_limits(self, memory_bytes: int, pids_max: int) -> None:
        # Lowering a limit below what is still charged (the last run's pages on their way out)
        # fails with EBUSY for a moment; the charge drops as soon as they are freed.
        for attempt in range(50):
            try:
                return self._write_limits(memory_bytes, pids_max)
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == 49:
                    raise
                time.sleep(0.01)

    def _write_limits(self, memory_bytes: int, pids_max: int) -> None:
        if self.version == 1:
            memory, pids = self.dirs
            limit, swap = memory / "memory.limit_in_bytes", memory / "memory.memsw.limit_in_bytes"
            # The kernel keeps memsw >= limit at every step, so the order depends on the direction.
            order = [limit, swap] if memory_bytes <= int(limit.read_text()) else [swap, limit]
            for path in order:
                if path.exists():
                    path.write_text(str(memory_bytes))
            (pids / "pids.max").write_text(str(pids_max))
        else:
            (d,) = self.dirs
            (d / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(FileNotFoundError):
                (d / "memory.swap.max").write_text("0")
            (d / "pids.max").write_text(str(pids_max))

    def resident_bytes(self) -> int:
        """Memory charged to the jail that is not page cache (which the kernel reclaims at will)."""
        memory = self.dirs[0]
        stat = dict(line.split() for line in (memory / "memory.stat").read_text().splitlines())
        if self.version == 1:
            usage = int((memory / "memory.usage_in_bytes").read_text())
            return usage - int(stat["total_active_file"]) - int(stat["total_inactive_file"])
        return int((memory / "memory.current").read_text()) - int(stat["file"])

    def oom_kills(self) -> int:
        if self.version == 1:
            text = (self.dirs[0] / "memory.oom_control").read_text()
        else:
            text = (self.dirs[0] / "memory.events").read_text()
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        # Old v1 kernels have no oom_kill counter: a hit on the limit is the next best signal.
        return int((self.dirs[0] / "memory.failcnt").read_text()) if self.version == 1 else 0

    def remove(self) -> None:
        """Kill what is left and delete the groups; exiting processes get a moment to be reaped."""
        for _ in range(50):
            left = False
            for d in self.dirs:
                try:
                    pids = (d / "cgroup.procs").read_text().split()
                except FileNotFoundError:
                    continue
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), 9)
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    left = True
            if not left:
                return
            time.sleep(0.02)
        log.warning("sandbox: cgroup %s could not be removed", self.dirs)


class CgroupManager:
    """Creates one cgroup per jail under a parent group of our own."""

    def __init__(self, version: int, parents: tuple[Path, ...]) -> None:
        self.version = version
        self.parents = parents

    def describe(self) -> str:
        return f"cgroup v{self.version} ({', '.join(str(p) for p in self.parents)})"

    def sweep_stale(self, min_age_s: float = 60.0) -> int:
        """Delete jail groups left empty by processes that died without closing their pools.

        A live jail's group always holds its launcher; a new one is filled within milliseconds
        of its creation, hence the age guard for groups of other processes starting jails now.
        """
        removed = 0
        now = time.time()
        for parent in self.parents:
            for group in parent.iterdir() if parent.is_dir() else ():
                try:
                    if not group.is_dir() or now - group.stat().st_mtime < min_age_s:
                        continue
                    if (group / "cgroup.procs").read_text().strip():
                        continue
                    group.rmdir()
                    removed += 1
                except OSError:
                    continue
        return removed

    def create(self) -> JailCgroup:
        name = uuid.uuid4().hex[:12]
        dirs = tuple(p / name for p in self.parents)
        for d in dirs:
            d.mkdir()
        return JailCgroup(self.version, dirs)


def _try_v1(group: str) -> CgroupManager | None:
    parents = (CGROUP_ROOT / "memory" / group, CGROUP_ROOT / "pids" / group)
    try:
        for p in parents:
            if not (CGROUP_ROOT / p.relative_to(CGROUP_ROOT).parts[0] / "cgroup.procs").exists():
                return None
            p.mkdir(parents=True, exist_ok=True)
            probe = p / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            probe.rmdir()
    except OSError:
        return None
    return CgroupManager(1, parents)


def _own_v2_group() -> Path | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return CGROUP_ROOT / line[3:].lstrip("/")
    return None


def _try_v2(group: str) -> CgroupManager | None:
    if not (CGROUP_ROOT / "cgroup.controllers").exists():
        return None
    own = _own_v2_group()
    if own is None:
        return None
    try:
        # Works where our own group delegates memory and pids to its children (a delegated
        # systemd unit, a container with a writable cgroupns); a group with processes cannot.
        parent = own / group
        parent.mkdir(parents=True, exist_ok=True)
        controllers = (parent / "cgroup.controllers").read_text().split()
        if "memory" not in controllers or "pids" not in controllers:
            return None
        (parent / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError:
        return None
    return CgroupManager(2, (parent,))


def detect(group: str = GROUP_PREFIX) -> CgroupManager | None:
    """Jails' cgroups go under `group` (a path relative to each hierarchy's root)."""
    manager = _try_v1(group) or _try_v2(group)
    if manager is None:
        log.info("sandbox: no writable cgroup memory+pids controllers; limits are rlimits only")
    elif swept := manager.sweep_stale():
        log.info("sandbox: removed %d stale jail cgroups", swept)
    return manager
