"""The trusted side of a function test: run the tests, calling the candidate through a pipe.

Runs inside the sandbox as its main program (imported, as `arbiter_referee`, by a two-line main
file, so that its shipped bytecode is used, or found already imported in a warm jail). Order matters:
1. start the contestant with two pipes as its only descriptors: a fork of this process, made
   before anything secret is read (the sandbox keeps stdin out of a program's memory until the
   program reads fd 0), so it is warm and holds nothing worth stealing;
2. make this process non-dumpable, so that the contestant (same uid, no capabilities) can neither
   ptrace it nor open /proc/<pid>/mem or /proc/<pid>/fd;
3. only then read the spec (tests, nonce) from stdin;
4. run each test here, in a namespace where the candidate's functions are `Remote` stubs whose
   results arrive as strictly decoded builtin values; report each outcome, prefixed by the
   nonce, on the sandbox's private result pipe (fd ARBITER_RESULT_FD), which the contestant
   never holds.
A test passes only when its code returns normally here; an exit, crash or silence of the
contestant is a failure, and nothing the contestant prints reaches the report. A contestant
replaced after a time-out or crash is a freshly exec'd interpreter: by then this process holds
the tests, so it is never forked again.

The contestant runs as the same uid and may signal this process, directly or by arming a pipe
it shares (O_ASYNC, F_SETOWN, F_SETSIG) so that this process's own read or close fires it. So
every signal is blocked here (the contestant's processes unblock them), and the per-test time
limit is a watchdog thread that interrupts the main thread without a signal
(_thread.interrupt_main); waits on the contestant's pipes are timed waits against the same
deadline. A signal can then at most kill or stop this process (SIGKILL, SIGSTOP), which ends the
run with every remaining test failed: it can neither fake a time-out nor break the cleanup into a fault.
"""

import _thread
import ast
import builtins
import ctypes
import importlib
import json
import os
import reprlib
import select
import signal
import sys
import threading
import time
import traceback

sys.path.insert(0, os.getcwd())
# From the work dir, before the contestant exists to tamper with it; a warm jail's launcher has
# imported all three before any run (nothing here reads a run's data at import).
import arbiter_contestant
import arbiter_wire as wire

CONTESTANT_ARGV = [sys.executable, "-E", "-s", "arbiter_contestant.py"]
PR_SET_DUMPABLE = 4
_libc = ctypes.CDLL(None)
_report_fd = None  # the run's result pipe, from ARBITER_RESULT_FD in main()


class CandidateError(Exception):
    """The candidate raised an exception that is not a builtin one (or no longer answers)."""


class CandidateGone(CandidateError):
    pass


class TestTimeout(BaseException):
    """Not an Exception, so that a test's own `except Exception` cannot swallow it."""


class Unsupported(BaseException):
    """The test passes the candidate a value that cannot cross (a lambda, an object): a fault of
    the test, not of the candidate, so it must not end as a failed test."""


class Watchdog:
    """The deadline of the test (or setup) now running, enforced from a thread of its own."""

    def __init__(self):
        self._lock = threading.Condition()
        self._deadline = None
        # Not threading.Thread.start(), which waits until the thread runs (up to milliseconds for
        # an idle CPU to wake): a deadline armed before it runs is found by its first check.
        _thread.start_new_thread(self._watch, ())

    def arm(self, seconds):
        with self._lock:
            self._deadline = time.monotonic() + seconds
            self._lock.notify()

    def disarm(self):
        with self._lock:
            self._deadline = None

    def remaining(self):
        """Seconds left, for a timed wait; None when nothing is armed."""
        with self._lock:
            return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def claim(self):
        """True once when the armed deadline has passed (which disarms it): the caller raises."""
        with self._lock:
            if self._deadline is None or time.monotonic() < self._deadline:
                return False
            self._deadline = None
            return True

    def _watch(self):
        with self._lock:
            while True:
                if self._deadline is None:
                    self._lock.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                # Runs _on_timeout in the main thread at its next bytecode; no signal is sent.
                _thread.interrupt_main(signal.SIGALRM)
                self._lock.wait()


watchdog = None


def _on_timeout(signum, frame):
    # Only ever called through interrupt_main (SIGALRM is blocked); late calls find it claimed.
    if watchdog.claim():
        raise TestTimeout()


def _wait(fd, writing=False):
    """Until `fd` is ready, or TestTimeout at the armed deadline."""
    while True:
        ready = select.select([] if writing else [fd], [fd] if writing else [], [], watchdog.remaining())
        if ready[0] or ready[1]:
            return
        if watchdog.claim():
            raise TestTimeout()


class Contestant:
    def __init__(self, warm):
        request_r, self.request_w = os.pipe()
        self.reply_r, reply_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, [])  # the referee's mask is its own
                os.setpgid(0, 0)  # its own process group, so that kill() takes its children too
                os.dup2(request_r, 0)
                os.dup2(reply_w, 1)
                os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
                os.closerange(3, 1 << 16)
                if warm:
                    arbiter_contestant.main()
                else:
                    os.execv(CONTESTANT_ARGV[0], CONTESTANT_ARGV)
            finally:
                os._exit(0)
        os.close(request_r)
        os.close(reply_w)
        os.set_blocking(self.request_w, False)  # a contestant that stops reading cannot hold a write
        self.buffer = b""
        self.load_error = None
        self.ready = False

    def kill(self):
        for target in (-self.pid, self.pid):
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.waitpid(self.pid, 0)
        os.close(self.request_w)
        os.close(self.reply_r)

    def _read_message(self):
        while b"\n" not in self.buffer:
            _wait(self.reply_r)
            chunk = os.read(self.reply_r, 1 << 16)
            if not chunk:
                raise CandidateGone("the candidate's process exited")
            self.buffer += chunk
            if len(self.buffer) > wire.MAX_LINE_BYTES:
                raise CandidateError("the candidate sent an oversized value")
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            return wire.loads(line)
        except wire.WireError as exc:
            raise CandidateError(f"the candidate sent a malformed value ({exc})") from None

    def wait_ready(self):
        if self.ready or self.load_error:
            return
        message = self._read_message()
        if message[0] == "ready":
            self.ready = True
        elif message[0] == "load_error" and len(message) == 2 and type(message[1]) is str:
            self.load_error = message[1]
        else:
            raise CandidateError("the candidate's process sent an unexpected message")

    def _send(self, data):
        while data:
            _wait(self.request_w, writing=True)
            try:
                data = data[os.write(self.request_w, data):]
            except BlockingIOError:
                continue
            except OSError:
                raise CandidateGone("the candidate's process exited") from None

    def call(self, name, args, kwargs):
        self.wait_ready()
        if self.load_error:
            raise CandidateError(f"the candidate's code failed to load: {self.load_error}")
        try:
            request = wire.dumps(["call", name, wire.encode(list(args)), wire.encode(dict(kwargs))])
        except (wire.WireError, RecursionError) as exc:
            raise Unsupported(f"a test argument cannot be sent to the candidate: {exc}") from None
        self._send(request)
        message = self._read_message()
        kind = message[0]
        if kind == "return" and len(message) == 2:
            return message[1]
        if kind == "raise" and len(message) == 3 and type(message[1]) is str and type(message[2]) is str:
            builtin = getattr(builtins, message[1], None)
            # A StopIteration raised into a test's `for x in map(candidate, xs)` would end the loop
            # early and skip its asserts, so the iteration protocol's exceptions never cross as such.
            if (isinstance(builtin, type) and issubclass(builtin, Exception)
                    and not issubclass(builtin, (StopIteration, StopAsyncIteration))):
                raise builtin(message[2])
            raise CandidateError(f"{message[1]}: {message[2]}")
        if kind == "unsendable" and len(message) == 2:
            raise CandidateError(f"the candidate returned a non-builtin value ({message[1]})")
        if kind == "missing" and len(message) == 2:
            raise CandidateError(f"the candidate defines no function {name!r}")
        raise CandidateError("the candidate's process sent an unexpected message")


class Session:
    """The current contestant; after a time-out or a crash it is replaced for the next test."""

    def __init__(self, first):
        self._contestant = first

    def contestant(self):
        if self._contestant is None:
            self._contestant = Contestant(warm=False)
        return self._contestant

    def discard(self):
        if self._contestant is not None:
            self._contestant.kill()
            self._contestant = None


class Remote:
    """Stands for one of the candidate's functions in the test namespace."""

    def __init__(self, session, name):
        self._session = session
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        return self._session.contestant().call(self.__name__, args, kwargs)

    def __repr__(self):
        return f"<candidate function {self.__name__}>"


def _free_names(code):
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _free_names(const)
    return names


def report(record, nonce):
    data = (nonce + " " + json.dumps(record) + "\n").encode()
    while data:
        data = data[os.write(_report_fd, data):]


def _describe(exc):
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def run_test(index, code, namespace, session, time_s):
    """Run one test; return (status, detail). Only a normal return of the test code passes."""
    watchdog.arm(time_s)
    try:
        try:
            contestant = session.contestant()
            contestant.wait_ready()
            if contestant.load_error:
                return "load_error", contestant.load_error
            exec(code, namespace)
        finally:
            # Disarmed before any handler below runs; a time-out claimed in here is still caught.
            watchdog.disarm()
    except TestTimeout:
        session.discard()
        return "time_limit", f"test {index} ran past {time_s:g} s"
    except AssertionError as exc:
        return "failed", f"assertion failed{': ' + str(exc)[:300] if str(exc) else ''}"
    except CandidateGone as exc:
        session.discard()
        return "crashed", str(exc)
    except Unsupported as exc:
        return "unsupported", str(exc)
    except BaseException as exc:  # any other way out of the test is a failure of this test
        return "error", _describe(exc)
    return "passed", ""


SIDES = "__arbiter_sides__"
_repr = reprlib.Repr()  # the jail's Python 3.11 takes no keyword arguments here
_repr.maxlevel, _repr.maxstring, _repr.maxother, _repr.maxlong = 4, 400, 400, 400


def compile_test(source, index):
    """A test's code; `assert ACTUAL == EXPECTED` alone keeps both sides' values in the namespace
    (evaluated once, in the same order, compared by the same ==) for the report of a failure."""
    tree = ast.parse(source)
    match tree.body:
        case [ast.Assert(test=ast.Compare(left=left, ops=[ast.Eq()], comparators=[right])) as node]:
            sides = ast.NamedExpr(ast.Name(SIDES, ast.Store()), ast.Tuple([left, right], ast.Load()))
            node.test = ast.Compare(ast.Subscript(sides, ast.Constant(0), ast.Load()), [ast.Eq()],
                                    [ast.Subscript(ast.Name(SIDES, ast.Load()), ast.Constant(1), ast.Load())])
            ast.fix_missing_locations(tree)
    return compile(tree, f"<test {index}>", "exec")


def run_and_report(index, code, namespace, session, time_s, nonce):
    namespace.pop(SIDES, None)
    started = time.monotonic()
    status, detail = run_test(index, code, namespace, session, time_s)
    record = {"test": index, "status": status, "detail": detail, "time_s": time.monotonic() - started}
    sides = namespace.pop(SIDES, None)
    if status == "failed" and isinstance(sides, tuple) and len(sides) == 2:
        record["actual"], record["expected"] = _repr.repr(sides[0]), _repr.repr(sides[1])
    report(record, nonce)
    return status


def _stdlib_modules_used(sources):
    """Standard modules a test uses as `math.isclose(...)` without importing them (MBPP's tests
    rely on the candidate's imports, which live in another process here)."""
    used = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                used.add(node.value.id)
    return used & sys.stdlib_module_names


def build_namespace(spec, session):
    """The tests' globals: the setup's definitions, `candidate`, and a Remote per free name."""
    namespace = {"__name__": "__arbiter_test__", "__builtins__": builtins}
    setup_code = compile(spec.get("setup") or "", "<setup>", "exec")
    tests = [compile_test(source, i) for i, source in enumerate(spec["tests"])]
    names = set().union(_free_names(setup_code), *(_free_names(code) for code in tests))
    modules = _stdlib_modules_used(spec["tests"])
    # Every other name the tests use that is not a builtin stands for the candidate's function
    # of that name, unless the setup defines it (HumanEval's `check`, its helper functions).
    for name in names:
        if name in modules:
            namespace[name] = importlib.import_module(name)
        elif not hasattr(builtins, name):
            namespace[name] = Remote(session, name)
    watchdog.arm(float(spec["time_s"]))  # a hanging setup is a fault
    try:
        exec(setup_code, namespace)
    finally:
        watchdog.disarm()
    if spec.get("entry_point"):
        # Bound after the setup, which may hold the prompt's stub of the same name (HumanEval/33's
        # test calls the function by name as well as through `candidate`).
        namespace["candidate"] = namespace[spec["entry_point"]] = Remote(session, spec["entry_point"])
    return namespace, tests


def main():
    # Written before the contestant exists: tells the host that the harness itself started, so
    # that a harness that cannot start is a fault rather than a failed candidate.
    global watchdog, _report_fd
    # From here on, test code imports the standard library only, never a file the contestant
    # could plant in the work dir (which the main file's run put first on the path).
    sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
    _report_fd = int(os.environ["ARBITER_RESULT_FD"])
    os.write(_report_fd, b"ARBITER-REFEREE-STARTED\n")
    session = None
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        signal.signal(signal.SIGALRM, _on_timeout)
        session = Session(Contestant(warm=True))
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        watchdog = Watchdog()  # after the fork: the warm contestant gets no copy of its thread
        spec = json.loads(sys.stdin.read())
        nonce = spec["nonce"]
        namespace, tests = build_namespace(spec, session)
        time_s = float(spec["time_s"])
        failed = False
        for index, code in enumerate(tests):
            if failed and spec.get("stop_at_first_failure"):
                report({"test": index, "status": "skipped", "detail": "not run after a failure"}, nonce)
                continue
            failed = run_and_report(index, code, namespace, session, time_s, nonce) != "passed" or failed
        session.discard()
    except BaseException:  # a fault of the harness or of the setup code: reported, never a verdict
        os.write(_report_fd, b"ARBITER-REFEREE-ERROR " + json.dumps(traceback.format_exc()[-2000:]).encode() + b"\n")
        if session is not None:
            session.discard()
        sys.exit(3)


if __name__ == "__main__":
    main()
