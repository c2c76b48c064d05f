"""The local backend end to end: real bwrap jails, real limits, the warm pool and the cold path."""

from __future__ import annotations

import hashlib
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox import Limits, LocalBackend, LocalConfig, PoolConfig, RunRequest, Sandbox, Status
from sandbox.plan import compile_key

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

FAST = Limits(wall_time_s=3.0, cpu_time_s=1.0, memory_mib=256)


@pytest.fixture(scope="module")
def box():
    with Sandbox(PoolConfig(pool_size=2)) as sandbox:
        yield sandbox


def py(source: str, **kwargs) -> RunRequest:
    return RunRequest("python", source, limits=kwargs.pop("limits", FAST), **kwargs)


def test_python_hello_world_is_ok(box):
    result = box.run(py("print('hello')"))
    assert result.status is Status.OK
    assert result.stdout == "hello\n"
    assert result.exit_code == 0


def test_stdin_reaches_program(box):
    assert box.run(py("print(input()[::-1])", stdin="abc\n")).stdout == "cba\n"


def test_python_runs_as_main_script(box):
    source = (
        "import sys, atexit, threading\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "threading.Thread(target=lambda: print('thread ran')).start()\n"
        "print(__name__, sys.argv[0], sys.path[0])\n"
    )
    out = box.run(py(source)).stdout.splitlines()
    assert sorted(out) == ["__main__ /work/solution.py /work", "atexit ran", "thread ran"]


def test_python_main_module_is_the_scripts_as_under_the_interpreter(box):
    """What `python3 file` gives a script: its module is sys.modules['__main__'] (so pickle finds
    its classes), no spec or package, a syntax error is a traceback and exit code 1."""
    source = (
        "import pickle, sys\n"
        "class Point:\n    pass\n"
        "print(sys.modules['__main__'] is sys.modules[__name__], __spec__, __package__, __file__)\n"
        "print(type(pickle.loads(pickle.dumps(Point()))).__name__)\n"
    )
    assert box.run(py(source)).stdout == "True None None /work/solution.py\nPoint\n"
    broken = box.run(py("def f(:\n"))
    assert (broken.exit_code, "SyntaxError" in broken.stderr) == (1, True), broken


def test_cpp_program_compiles_and_runs(box):
    source = "#include <iostream>\nint main(){long a,b; std::cin>>a>>b; std::cout<<a*b<<'\\n';}\n"
    result = box.run(RunRequest("cpp", source, stdin="6 7", limits=Limits(wall_time_s=3, compile_time_s=30)))
    assert (result.status, result.stdout) == (Status.OK, "42\n")


def test_cpp_compile_error_is_compile_error(box):
    result = box.run(RunRequest("cpp", "int main() { return undeclared; }"))
    assert result.status is Status.COMPILE_ERROR
    assert "undeclared" in result.stderr


def test_nonzero_exit_is_runtime_error_with_its_code(box):
    result = box.run(py("import sys; sys.exit(3)"))
    assert (result.status, result.exit_code) == (Status.RUNTIME_ERROR, 3)


def test_uncaught_exception_is_runtime_error_with_traceback(box):
    result = box.run(py("raise ValueError('boom')"))
    assert result.status is Status.RUNTIME_ERROR
    assert "ValueError: boom" in result.stderr


def test_fatal_signal_is_reported(box):
    result = box.run(py("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"))
    assert (result.status, result.signal) == (Status.RUNTIME_ERROR, 11)


def test_busy_loop_hits_cpu_time_limit(box):
    result = box.run(py("while True: pass", limits=Limits(wall_time_s=5, cpu_time_s=0.5)))
    assert result.status is Status.TIME_LIMIT


def test_sleep_hits_wall_time_limit(box):
    result = box.run(py("import time; time.sleep(60)", limits=Limits(wall_time_s=0.5, cpu_time_s=1)))
    assert result.status is Status.TIME_LIMIT
    assert result.wall_time_s < 5


def test_allocation_bomb_is_memory_limit(box):
    result = box.run(py("x = bytearray(1 << 34)"))
    assert result.status is Status.MEMORY_LIMIT


def test_gradual_allocation_is_memory_limit(box):
    result = box.run(py("a = []\nwhile True: a.append(bytearray(1 << 20))"))
    assert result.status is Status.MEMORY_LIMIT


def test_output_flood_is_output_limit_and_capped(box):
    limits = Limits(wall_time_s=5, cpu_time_s=2, max_output_bytes=10_000)
    result = box.run(py("while True: print('x' * 1000)", limits=limits))
    assert result.status is Status.OUTPUT_LIMIT
    assert len(result.stdout) <= 10_000


def test_result_fd_is_returned_out_of_band(box):
    source = "import os\nos.write(int(os.environ['ARBITER_RESULT_FD']), b'3 passed')\nprint('noise')"
    result = box.run(py(source, result_fd=True))
    assert result.result_bytes == b"3 passed"
    assert result.stdout == "noise\n"


def test_fd_3_is_closed_without_result_fd(box):
    result = box.run(py("import os\nos.write(3, b'x')"))
    assert result.status is Status.RUNTIME_ERROR
    assert "Bad file descriptor" in result.stderr
    assert result.result_bytes is None


def test_child_of_harness_cannot_reach_its_result_fd(box):
    # The documented harness pattern: the parent keeps fd 3, the child closes it and then tries
    # to reopen it through /proc; the parent is non-dumpable, so that fails.
    source = (
        "import os\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.close(3)\n"
        "    try:\n"
        "        fd = os.open(f'/proc/{os.getppid()}/fd/3', os.O_WRONLY)\n"
        "        os.write(fd, b'forged'); print('FORGED', flush=True)\n"
        "    except OSError as e:\n"
        "        print('blocked', e.errno, flush=True)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "os.write(3, b'genuine')\n"
    )
    result = box.run(py(source, result_fd=True))
    assert result.result_bytes == b"genuine"
    assert result.stdout.startswith("blocked")


def test_files_are_placed_read_only_in_work_dir(box):
    source = (
        "import harness_data, os\n"
        "print(harness_data.VALUE)\n"
        "for attempt in (lambda: open('harness_data.py', 'w'), lambda: os.chmod('harness_data.py', 0o666),\n"
        "                lambda: os.unlink('harness_data.py'), lambda: os.rename('harness_data.py', 'x.py')):\n"
        "    try:\n"
        "        attempt(); print('CHANGED')\n"
        "    except OSError:\n"
        "        pass\n"
        "open('scratch.txt', 'w').write('work dir is writable')\n"
    )
    result = box.run(py(source, files={"harness_data.py": "VALUE = 41 + 1\n"}))
    assert (result.status, result.stdout) == (Status.OK, "42\n")


def test_binary_files_arrive_byte_for_byte(box):
    data = bytes(range(256)) * 300 + b"\x00"
    source = "import hashlib, sys\nprint(hashlib.sha256(open('blob.bin', 'rb').read()).hexdigest())\n"
    result = box.run(py(source, files={"blob.bin": data, "sub/empty.bin": b""}))
    assert (result.status, result.stdout.strip()) == (Status.OK, hashlib.sha256(data).hexdigest())


def test_bad_file_name_is_rejected(box):
    with pytest.raises(ValueError, match="bad file name"):
        box.run(py("pass", files={"../escape.py": ""}))


def test_unknown_language_is_rejected(box):
    with pytest.raises(ValueError, match="unknown language"):
        box.run(RunRequest("cobol", "DISPLAY 'hi'."))


def test_next_run_in_same_jail_sees_nothing_of_previous():
    with Sandbox(PoolConfig(pool_size=1)) as single:
        single.run(py("open('/work/left.txt','w').write('x'); open('/tmp/left.txt','w').write('x');"
                      "open('/dev/shm/left','w').write('x')"))
        result = single.run(py("import os; print(os.listdir('/work'), os.listdir('/tmp'), os.listdir('/dev/shm'))"))
    assert result.stdout == "['solution.py'] [] []\n"


def test_concurrent_runs_from_many_threads(box):
    def one(i: int) -> str:
        return box.run(py(f"print({i} * 2)")).stdout

    with ThreadPoolExecutor(6) as pool:
        outputs = list(pool.map(one, range(24)))
    assert outputs == [f"{i * 2}\n" for i in range(24)]


def test_cold_backend_gives_same_status_as_pool(box):
    cold = LocalBackend()
    for request in (py("print(1)"), py("import sys; sys.exit(2)"), py("x = bytearray(1 << 34)")):
        assert cold.run(request).status is box.run(request).status


def test_memory_limit_holds_without_cgroups():
    backend = LocalBackend(LocalConfig(use_cgroups=False))
    assert "rlimits only" in backend.describe()
    assert backend.run(py("x = bytearray(1 << 30)")).status is Status.MEMORY_LIMIT


def test_describe_names_limit_mechanism(box):
    text = box.describe()
    assert "bwrap" in text and ("cgroup" in text or "rlimits only" in text)


def test_run_after_close_is_an_error():
    sandbox = Sandbox(PoolConfig(pool_size=1))
    sandbox.close()
    with pytest.raises(RuntimeError, match="closed"):
        sandbox.run(py("pass"))


def test_runs_are_not_serialised_by_one_slow_run(box):
    slow = threading.Thread(target=box.run, args=(py("import time; time.sleep(2)"),))
    slow.start()
    assert box.run(py("print('fast')")).stdout == "fast\n"
    slow.join()


def test_cpp_program_is_compiled_once_for_many_inputs():
    source = "#include <iostream>\nint main(){int x; std::cin>>x; std::cout<<x+1<<'\\n';}\n"
    with Sandbox(PoolConfig(pool_size=1)) as single:
        first = single.run(RunRequest("cpp", source, stdin="1"))
        again = [single.run(RunRequest("cpp", source, stdin=str(i))) for i in (10, 20)]
        other = single.run(RunRequest("cpp", source.replace("x+1", "x+2"), stdin="1"))
    assert [r.stdout for r in (first, *again, other)] == ["2\n", "11\n", "21\n", "3\n"]
    # The cached binary is a read-only file the program cannot replace for a later run.
    assert single._backend.compile_cache.get(compile_key(RunRequest("cpp", source))) is not None


def test_cached_binary_cannot_be_overwritten_by_the_program(box):
    source = ("#include <cstdio>\nint main(){ FILE*f = std::fopen(\"main\", \"w\");"
              " std::puts(f ? \"overwrote\" : \"protected\"); }\n")
    results = [box.run(RunRequest("cpp", source)) for _ in range(3)]
    assert [r.stdout for r in results] == ["protected\n"] * 3


def test_pool_reports_sandbox_error_when_jails_cannot_start():
    broken = PoolConfig(pool_size=1, local=LocalConfig(python_path="/usr/bin/no-such-python"))
    with Sandbox(broken) as sandbox:
        result = sandbox.run(py("pass"))
    assert result.status is Status.SANDBOX_ERROR
    assert "cannot be started" in result.detail


def test_small_limit_after_a_run_that_filled_tmp():
    fill = "for i in range(4): open(f'/tmp/big{i}', 'wb').write(b'x' * (12 << 20))"
    with Sandbox(PoolConfig(pool_size=1)) as single:
        assert single.run(py(fill, limits=Limits(memory_mib=256))).status is Status.OK
        small = single.run(py("print('fits')", limits=Limits(memory_mib=64)))
    assert (small.status, small.stdout) == (Status.OK, "fits\n")


def test_run_that_cannot_be_set_up_is_a_sandbox_error_and_the_next_run_is_served(box):
    # The work dir cannot hold both a file `a` and a directory `a`: the launcher's set-up fails
    # before any program runs, which is the sandbox's fault, never the program's verdict.
    failed = box.run(py("pass", files={"a": "x", "a/b": "y"}))
    assert failed.status is Status.SANDBOX_ERROR and "set-up failed: FileExistsError" in failed.detail, failed
    assert box.run(py("print('next')")).stdout == "next\n"


def test_pool_counts_the_cpu_time_its_runs_spend():
    with Sandbox(PoolConfig(pool_size=1)) as pool:
        before = pool.cpu_time_s()
        spin = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.3:\n    pass\n"
        assert pool.run(py(spin)).status is Status.OK
        assert pool.cpu_time_s() - before >= 0.25
