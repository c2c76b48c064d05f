"""Trusted launcher that lives inside a jail: started once per jail, it serves one run at a time.

Runs as PID 1 of the jail's PID namespace under the system interpreter, stdlib only (it is passed
to `python3 -c`, so it must not import anything from this repository). At start it imports the
modules the host sends first (the function-test harness: trusted code that reads no run data
at import) and empties its capability bounding set, both once for every run it forks. Per run:

    zygote (jail PID 1, caps inside the jail's user namespace, never touches run data)
      └─ B: cloned straight into new mount and PID namespaces (one clone(2), no intermediate
            process): PID 1 of the run. Mounts fresh tmpfs on /work, /tmp, /dev/shm and a new
            /proc, reads the run spec from a memfd, writes the files, then per step forks C and
            waits; on the deadline or at the end kill(-1) takes every process of the run.
            Writes one JSON status line and exits, which tears the namespace down.
           └─ C: the program. Fresh stdio, rlimits, all capabilities and the bounding set dropped,
                 no_new_privs, seccomp filter; then exec, or (warm Python) the script in a new
                 __main__ of this already-started interpreter.

A one-step run (no compile step: every graded Python run) skips B: the zygote clones C straight
into a new mount namespace only, C sets up the mounts and files B would have, then becomes the
program; the zygote times it, kills and reaps everything it left behind (kill(-1) from PID 1 of
the jail) and reports. One fork fewer per run; the program then sees PID 1 (the non-dumpable
zygote) and itself, and its PID is the jail's counter, not 2.

The zygote only ever sees a small header and file descriptors; the program, its stdin and files
travel in memfds that B and C read, so nothing of one run stays in the memory the next run forks.
The zygote is non-dumpable: a program of the same uid cannot open its /proc entries, and as PID 1
it ignores every signal a program inside can send; so does B, PID 1 of its own namespace, which
installs no handler either (its deadline is a timed wait on the program's pidfd, not an alarm).

Once every process of a run is gone, what a run can still leave behind is descriptors parked in
flight (a unix socket that holds itself in its own queue); all of them ride on unix sockets of the
jail's network namespace, so the zygote looks there, has the kernel collect them and reports any
that survive, and the host retires the jail (_in_flight). Each report goes out when the run's
processes are gone, never at the end of file of pipes such a descriptor may hold open.

With `--container` (the Docker backend) the same code is PID 1 of a one-run container instead:
B without the mounts, reading the spec from stdin and multiplexing the program's output, result
fd, the compiled artifact and its status as frames on its own stdout.
"""

import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

# Modules worth having warm for graded programs: the fork inherits them already imported.
PRELOAD = (
    "array", "ast", "bisect", "collections", "copy", "dataclasses", "datetime", "decimal", "fractions",
    "functools", "hashlib", "heapq", "io", "itertools", "json", "math", "operator", "random", "re",
    "pkgutil", "runpy", "statistics", "string", "traceback", "typing", "unittest", "threading", "atexit",
    "types", "abc", "contextlib", "enum", "numbers", "textwrap", "unicodedata", "weakref",
)
for _name in PRELOAD:
    try:
        __import__(_name)
    except ImportError:
        pass

libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
SYS_CLONE = 56  # x86_64; the seccomp filter rejects other architectures anyway
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAP_AMBIENT = 38, 22, 47
PR_CAP_AMBIENT_CLEAR_ALL, SECCOMP_MODE_FILTER = 4, 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522
RESULT_FD = 3
IN_FLIGHT_GRACE_S = 0.5  # how long the kernel's unix-socket collector gets after a run
STATUS_ERROR_CAP_CHARS = 4096  # a set-up error's text, JSON-escaped, stays far below a pipe's 64 KiB


class _Fail(Exception):
    pass


def _check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise _Fail(f"{what}: {os.strerror(err)}")


def _mount(src, dst, fstype, flags, data=None):
    _check(libc.mount(src.encode() if src else None, dst.encode(), fstype.encode() if fstype else None,
                      ctypes.c_ulong(flags), data.encode() if data else None), f"mount {dst}")


def _recv(sock):
    """One framed message: 4-byte length, JSON; descriptors ride on the first chunk."""
    data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 16)
    if not data:
        raise EOFError
    while len(data) < 4:
        more = sock.recv(65536)
        if not more:
            raise EOFError
        data += more
    (length,) = struct.unpack("!I", data[:4])
    while len(data) < 4 + length:
        more = sock.recv(65536)
        if not more:
            raise EOFError
        data += more
    return json.loads(data[4:4 + length]), fds


def _send(sock, obj):
    payload = json.dumps(obj).encode()
    sock.sendall(struct.pack("!I", len(payload)) + payload)


# ---------------------------------------------------------------- C: the program's own process


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# Read once per jail rather than per run: the running kernel's value cannot change.
LAST_CAP = int(open("/proc/sys/kernel/cap_last_cap").read())


# True once this process has emptied its bounding set, which every process it forks inherits.
bounding_set_empty = False


def _drop_bounding_set():
    for cap in range(LAST_CAP + 1):
        # Without CAP_SETPCAP (a container started with all capabilities dropped) the bounding
        # set cannot be changed; it no longer matters: no capabilities, uid != 0, no_new_privs.
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 1:
            raise _Fail(f"capbset: {os.strerror(ctypes.get_errno())}")


def _drop_privileges(bpf):
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if not bounding_set_empty:
        _drop_bounding_set()
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(libc.capset(header, data), "capset")
    prog = ctypes.create_string_buffer(bpf, len(bpf))
    fprog = SockFprog(len(bpf) // 8, ctypes.addressof(prog))
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


def _set_rlimits(lim):
    cpu = max(1, int(lim["cpu_s"] + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (lim["as_bytes"], lim["as_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim["fsize_bytes"], lim["fsize_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (lim["nofile"], lim["nofile"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (lim["nproc"], lim["nproc"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))
    _soft, stack_hard = resource.getrlimit(resource.RLIMIT_STACK)
    # Contest programs recurse deeply: the stack may grow to the memory limit, as judges allow,
    # unless the language's runtime sizes every thread's stack by this limit (stack_bytes less).
    want = lim["stack_bytes"] if stack_hard == resource.RLIM_INFINITY else min(lim["stack_bytes"], stack_hard)
    resource.setrlimit(resource.RLIMIT_STACK, (want, stack_hard))


def _exit_code_of(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass
    return 1


def _run_python(path):
    """`python3 path` in this interpreter: __main__, sys.argv, sys.path[0], atexit, threads.

    The script runs in a new __main__ module set up as the interpreter's own start-up does,
    rather than through runpy, which first asks every path hook whether the file is a zip
    archive or a directory and reads it three times.
    """
    import atexit
    import builtins
    import threading
    import types
    from importlib.machinery import SourceFileLoader

    sys.argv = [path]
    sys.path.insert(0, os.path.dirname(path))
    main = types.ModuleType("__main__")
    main.__dict__.update(__package__=None, __loader__=SourceFileLoader("__main__", path), __spec__=None,
                         __annotations__={}, __file__=path, __cached__=None, __builtins__=builtins)
    sys.modules["__main__"] = main
    code = 0
    try:
        with open(path, "rb") as f:
            source = f.read()
        exec(compile(source, path, "exec"), main.__dict__)
    except SystemExit as exc:
        code = _exit_code_of(exc.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    except SystemExit as exc:
        code = _exit_code_of(exc.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            code = code or 120
    os._exit(code)


def _become_program(step, spec, stdio):
    try:
        os.setsid()
        for target, fd in enumerate(stdio):
            if fd == target:
                os.set_inheritable(fd, True)
            elif fd is not None:
                os.dup2(fd, target, inheritable=True)
        keep = 4 if stdio[RESULT_FD] is not None else 3
        os.closerange(keep, 1 << 16)
        # Under memory pressure the program goes first, never the launcher. The file of a
        # non-dumpable process belongs to root, hence the brief switch.
        libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        os.chdir(spec["work_dir"])
        _set_rlimits(step["limits"])
        os.environ.clear()
        os.environ.update(spec["env"])
        _drop_privileges(bytes.fromhex(spec["bpf_hex"]))
    except BaseException as exc:
        os.write(2, f"arbiter sandbox: program set-up failed: {exc}\n".encode())
        os._exit(127)
    if step["kind"] == "python":
        _run_python(os.path.join(spec["work_dir"], step["path"]))
    try:
        os.execve(step["argv"][0], step["argv"], os.environ)
    except OSError as exc:
        os.write(2, f"arbiter sandbox: cannot execute {step['argv'][0]}: {exc}\n".encode())
        os._exit(127)


# ---------------------------------------------------------------- B: PID 1 of the run


def _prepare_filesystem(spec, fresh_proc=True):
    options = f"size={spec['tmpfs_bytes']},nr_inodes={spec['tmpfs_inodes']},mode=0755"
    for path in ("/work", "/tmp", "/dev/shm"):
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)
    # bwrap's /dev is a tmpfs the jail keeps across runs: read-only here (its device nodes are
    # mounts of their own and stay usable), so nothing written there reaches the next run.
    _mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if fresh_proc:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chmod("/tmp", 0o1777)
    os.chmod("/dev/shm", 0o1777)


def _write_files(spec, read_only_mounts, blob=None):
    """The run's files; their contents are hex in the spec, or slices of `blob` (a memoryview)."""
    for item in spec["files"]:
        path = os.path.join(spec["work_dir"], item["name"])
        if os.path.dirname(path) != spec["work_dir"]:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        data = bytes.fromhex(item["hex"]) if blob is None else blob[item["offset"]:item["offset"] + item["size"]]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, item["mode"])
        finally:
            os.close(fd)
        if item.get("read_only") and read_only_mounts:
            # A read-only bind over the file itself: the program (same uid, no caps) can neither
            # write it, chmod it back, nor unlink or rename it (a mount point is busy).
            _mount(path, path, None, MS_BIND)
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _record_exit(outcome, status, usage):
    outcome["cpu_s"] += usage.ru_utime + usage.ru_stime
    outcome["maxrss_kib"] = max(outcome["maxrss_kib"], usage.ru_maxrss)
    if os.WIFSIGNALED(status):
        outcome["signal"] = os.WTERMSIG(status)
    else:
        outcome["exit_code"] = os.WEXITSTATUS(status)


def _run_steps(spec, stdio, artifact_fd=None):
    # The deadline is a timed wait on the program's pidfd, not an alarm: this process installs no
    # signal handler, so as PID 1 of the run's namespace no signal from the run reaches it.
    results = []
    for step in spec["steps"]:
        capture = None
        step_stdio = list(stdio)
        if step.get("capture"):
            capture = os.memfd_create("compile-output")
            step_stdio = [stdio[0], capture, capture, None]
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _become_program(step, spec, step_stdio)
        outcome = {"exit_code": None, "signal": None, "timed_out": False, "cpu_s": 0.0, "maxrss_kib": 0}
        pidfd = os.pidfd_open(pid)
        if select.select([pidfd], [], [], step["wall_s"])[0]:
            _got, status, usage = os.wait4(pid, 0)
            _record_exit(outcome, status, usage)
        else:
            outcome["timed_out"] = True
        os.close(pidfd)
        # The step is over: everything it left behind (daemons, sessions, zombies) goes with it.
        _reap_all(outcome)
        outcome["wall_s"] = time.monotonic() - started
        results.append(outcome)
        ok = outcome["exit_code"] == 0 and not outcome["timed_out"]
        if capture is not None:
            if not ok:
                os.lseek(capture, 0, os.SEEK_SET)
                os.write(stdio[2], os.read(capture, spec["capture_cap_bytes"]))
            os.close(capture)
        if ok and step.get("capture") and artifact_fd is not None and spec.get("collect"):
            # Handed back before the program itself runs and could touch it.
            with open(os.path.join(spec["work_dir"], spec["collect"]), "rb") as f:
                os.write(artifact_fd, f.read())
        if not ok:
            break
    return results


def _set_up_run(fds, fresh_proc=True):
    """Private mounts, the spec (from its memfd), fresh tmpfs dirs and the run's files."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    spec_fd = fds[0]
    os.lseek(spec_fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(spec_fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(spec_fd)
    # The memfd holds a 4-byte length, the JSON spec, then the files' contents (raw).
    data = memoryview(b"".join(chunks))
    (length,) = struct.unpack("!I", data[:4])
    spec = json.loads(data[4:4 + length].tobytes())
    blob = data[4 + length:]
    named = dict(zip(spec["fd_names"], fds, strict=True))
    stdio = [named["stdin"], named["stdout"], named["stderr"], named.get("result")]
    _prepare_filesystem(spec, fresh_proc)
    _write_files(spec, read_only_mounts=True, blob=blob)
    return spec, named, stdio


def _run_init(fds, status_fd):
    try:
        spec, named, stdio = _set_up_run(fds)
        results = _run_steps(spec, stdio, named.get("artifact"))
        for fd in fds[1:]:  # the spec is closed already; the host sees EOF before the status
            os.close(fd)
        # Free the run's files now rather than at namespace teardown, so the jail's memory
        # charge is back to normal before the host reads the status and sets the next limits.
        for path in ("/work", "/tmp", "/dev/shm"):
            libc.umount2(path.encode(), MNT_DETACH)
        os.write(status_fd, (json.dumps({"steps": results}) + "\n").encode())
        os._exit(0)
    except BaseException as exc:
        try:
            os.write(status_fd, (json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n").encode())
        finally:
            os._exit(1)


def _run_direct(fds, status_fd):
    """A one-step run without an init of its own: set up its mounts and files, then become the program.

    Its only ancestor in the jail's PID namespace is the zygote, which times it, reaps it and
    every process it leaves behind, and reports; set-up errors come back on `status_fd`, which
    the program never holds (closed with every other descriptor as it starts). The zygote reads
    it only once this process is gone, so the error is kept well under a pipe's capacity.
    """
    try:
        spec, _named, stdio = _set_up_run(fds, fresh_proc=False)
    except BaseException as exc:
        try:
            why = f"{type(exc).__name__}: {exc}"[:STATUS_ERROR_CAP_CHARS]
            os.write(status_fd, (json.dumps({"error": why}) + "\n").encode())
        finally:
            os._exit(1)
    _become_program(spec["steps"][0], spec, stdio)


# ---------------------------------------------------------------- the zygote itself


def _unix_sockets():
    with open("/proc/net/unix", "rb") as f:
        return f.read().count(b"\n") - 1


def _in_flight():
    """Unix sockets left in the jail's network namespace once every process of a run is gone.

    Only descriptors parked in flight outlive their processes: a socket that holds itself in its
    own queue (SCM_RIGHTS) keeps itself and whatever rides with it (pipes, memfds, ptys, bound
    abstract names, the tmpfs pages behind them) alive until the kernel's collector runs, which
    it does when some unix socket is released somewhere. Release one, give the collector a
    moment, and return what is still there: the host retires a jail where anything is.
    """
    if not _unix_sockets():
        return 0
    for end in socket.socketpair():
        end.close()
    deadline = time.monotonic() + IN_FLIGHT_GRACE_S
    while (left := _unix_sockets()) and time.monotonic() < deadline:
        time.sleep(0.002)
    return left


def _reap_all(outcome):
    """Kill every process of this PID namespace but the caller, reap them, and add their usage to `outcome`."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            _got, _status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            return
        outcome["cpu_s"] += usage.ru_utime + usage.ru_stime
        outcome["maxrss_kib"] = max(outcome["maxrss_kib"], usage.ru_maxrss)


def _clone_run(flags, sock, fds, child):
    """Start a run's first process in new namespaces (`flags`); watch it, the host and its status pipe.

    A raw clone(2) rather than os.fork(): it creates the namespaces and the process in one step.
    Python's after-fork hooks only matter with threads, and the zygote never starts one.
    """
    status_r, status_w = os.pipe()
    pid = libc.syscall(SYS_CLONE, flags | signal.SIGCHLD, 0, 0, 0, 0)
    if pid < 0:
        raise _Fail(f"clone: {os.strerror(ctypes.get_errno())}")
    if pid == 0:
        sock.close()
        os.close(status_r)
        gc.disable()
        child(fds, status_w)
    for fd in fds:
        os.close(fd)
    os.close(status_w)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    for fd in (pidfd, sock, status_r):
        poller.register(fd, select.POLLIN)
    return pid, pidfd, status_r, poller


def _host_kill_reason(sock):
    """Read one message from the host: the reason when it asks to kill the run, else None."""
    msg, extra = _recv(sock)
    for fd in extra:
        os.close(fd)
    return msg.get("reason", "host") if msg.get("op") == "kill" else None


def _serve_direct(sock, header, fds):
    """One step, the program a direct child of this process: one fork per run instead of two.

    Same guarantees as with a run init: fresh mounts (its own mount namespace), a wall-clock
    limit, and at the end kill(-1) takes every process it started, which leaves this launcher,
    PID 1 of the jail, alone again before the status goes out.
    """
    started = time.monotonic()
    pid, pidfd, status_r, poller = _clone_run(CLONE_NEWNS, sock, fds, _run_direct)
    # Its status pipe is read once the program is gone; its end of file as the program starts
    # (which closes it) would only wake this process, whose every write then copies a page the
    # program still shares.
    poller.unregister(status_r)
    deadline = started + min(header["wall_s"], header["backstop_s"])
    outcome = {"exit_code": None, "signal": None, "timed_out": False, "cpu_s": 0.0, "maxrss_kib": 0}
    killed = None
    error = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcome["timed_out"] = True
            break
        events = dict(poller.poll(remaining * 1000))
        if pidfd in events:
            _got, status, usage = os.wait4(pid, 0)
            _record_exit(outcome, status, usage)
            break
        if sock.fileno() in events:
            killed = _host_kill_reason(sock)
            if killed is not None:
                break
    _reap_all(outcome)
    outcome["wall_s"] = time.monotonic() - started
    while chunk := os.read(status_r, 1 << 16):  # every writer is gone: this cannot block
        error += chunk
    os.close(pidfd)
    os.close(status_r)
    if error.strip():
        try:
            status = json.loads(error)
        except ValueError:
            status = {"error": "unreadable run status"}
    elif killed is not None:
        status = {"killed": killed}
    else:
        status = {"steps": [outcome]}
    _send(sock, {"op": "done", **status, "in_flight": _in_flight()})


def _serve_run(sock, header, fds):
    if header.get("wall_s") is not None:
        _serve_direct(sock, header, fds)
        return
    pid, pidfd, status_r, poller = _clone_run(CLONE_NEWNS | CLONE_NEWPID, sock, fds, _run_init)
    deadline = time.monotonic() + header["backstop_s"]
    killed = None
    line = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            killed = "backstop"
            os.kill(pid, signal.SIGKILL)
            break
        events = dict(poller.poll(remaining * 1000))
        if status_r in events:
            chunk = os.read(status_r, 1 << 20)
            line += chunk
            # B reports only once every process of the run is dead and its pipes closed: answer
            # now and let the namespace teardown happen after, off the host's critical path.
            if line.endswith(b"\n") or not chunk:
                break
        if pidfd in events:
            line += os.read(status_r, 1 << 20)
            break
        if sock.fileno() in events:
            killed = _host_kill_reason(sock)
            if killed is not None:
                os.kill(pid, signal.SIGKILL)
                break
    try:
        status = json.loads(line) if line.strip() else {"error": "run ended without a status"}
    except ValueError:
        status = {"error": "unreadable run status"}
    if killed is not None:
        status["killed"] = killed
        # Killed, B has not reaped its namespace: its exit waits for every process there.
        os.waitpid(pid, 0)
    _send(sock, {"op": "done", **status, "in_flight": _in_flight()})
    if killed is None:
        os.waitpid(pid, 0)
    os.close(pidfd)
    os.close(status_r)


FRAME = struct.Struct("!cI")  # channel (o, e, r, s), payload length


def _frame(channel, data):
    view = memoryview(FRAME.pack(channel, len(data)) + data)
    while view:
        view = view[os.write(1, view):]


def _pump(sources, caps, state, ended):
    """Forward the program's pipes to our stdout as frames; over a cap, end the run.

    Once `ended` is readable every process of the run is gone: what its pipes hold then is all
    it wrote, and a pipe still open after that is held by a descriptor parked in flight, not by
    a writer, so the pump stops at the first moment nothing is left to read rather than at EOF.
    """
    open_fds = dict(sources)
    counts = dict.fromkeys(caps, 0)
    finishing = False
    while open_fds:
        ready, _, _ = select.select([*open_fds, *(() if finishing else (ended,))], [], [], 0 if finishing else None)
        if ended in ready:
            finishing = True
            continue
        if finishing and not ready:
            return
        for fd in ready:
            data = os.read(fd, 65536)
            channel = open_fds[fd]
            if not data:
                del open_fds[fd]
                continue
            room = caps[channel] + 1 - counts[channel]
            if room > 0:
                _frame(channel, data[:room])
            counts[channel] += len(data)
            if counts[channel] > caps[channel] and not state["output_exceeded"]:
                state["output_exceeded"] = True
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def container_main():
    """Docker mode: PID 1 of a fresh container; spec on stdin, everything back as frames on stdout.

    The container is the run's namespace, so this is B without the mounts: it writes the files,
    runs the steps and multiplexes the program's stdout, stderr and result pipe into framed
    stdout, which the program never holds, followed by one status frame.
    """
    import threading

    spec = json.loads(sys.stdin.buffer.read())
    os.close(0)
    _write_files(spec, read_only_mounts=False)
    stdin_fd = os.memfd_create("stdin")
    os.write(stdin_fd, bytes.fromhex(spec["stdin_hex"]))
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    pipes = {channel: os.pipe() for channel in ([b"o", b"e", b"r"] if spec["result_fd"] else [b"o", b"e"])}
    caps = {b"o": spec["output_cap_bytes"], b"e": spec["output_cap_bytes"], b"r": spec["result_cap_bytes"]}
    state = {"output_exceeded": False}
    ended_r, ended_w = os.pipe()
    pump = threading.Thread(target=_pump, args=({r: c for c, (r, _w) in pipes.items()}, caps, state, ended_r))
    pump.start()
    stdio = [stdin_fd, pipes[b"o"][1], pipes[b"e"][1], pipes[b"r"][1] if b"r" in pipes else None]
    artifact_fd = os.memfd_create("artifact") if spec.get("collect") else None
    try:
        status = {"steps": _run_steps(spec, stdio, artifact_fd)}
    except BaseException as exc:
        status = {"error": f"{type(exc).__name__}: {exc}"}
    for _r, w in pipes.values():
        os.close(w)
    _in_flight()  # what the run parked in flight is freed now, not whenever the host next collects
    os.write(ended_w, b"x")
    pump.join()
    status["output_exceeded"] = state["output_exceeded"]
    if artifact_fd is not None:
        _frame(b"a", os.pread(artifact_fd, os.lseek(artifact_fd, 0, os.SEEK_END), 0))
    _frame(b"s", json.dumps(status).encode())
    os._exit(0)


def _preload(modules):
    """Import the host's warm modules ([name, source] pairs in import order) into this process.

    They are trusted code that reads no run data at import (the function-test harness), so a
    run forked from here starts with them imported: no file to find, read and unmarshal.
    """
    import types

    path = sys.path[:]
    for name, source in modules:
        module = types.ModuleType(name)
        module.__file__ = f"{name}.py"
        sys.modules[name] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    sys.path[:] = path  # as it was: a module's import may have added the work dir


def main():
    global bounding_set_empty
    sock = socket.socket(fileno=int(sys.argv[1]))
    header, fds = _recv(sock)
    for fd in fds:
        os.close(fd)
    _preload(header.get("modules", []))
    # Once here rather than in every program: capabilities this process keeps (it needs
    # CAP_SYS_ADMIN for each run's mounts) stay, and no process started from it can regain any.
    _drop_bounding_set()
    bounding_set_empty = True
    # Objects that exist now are never collected: forks then do not copy pages just to walk them.
    gc.collect()
    gc.freeze()
    _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")
    _send(sock, {"op": "ready", "pid": os.getpid()})
    while True:
        try:
            header, fds = _recv(sock)
        except (EOFError, ConnectionError):
            os._exit(0)
        if header.get("op") == "run":
            _serve_run(sock, header, fds)
        else:
            for fd in fds:
                os.close(fd)


# As PID 1 (of the jail, of a run, of a container) only signals with a handler get through from
# inside: keep it that way, without even Python's SIGINT handler.
signal.signal(signal.SIGINT, signal.SIG_DFL)
if sys.argv[1:] == ["--container"]:
    container_main()
else:
    main()
