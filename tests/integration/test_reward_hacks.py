"""Known reward hacks against code graders, each run for real in the sandbox: none may pass.

Every hack is graded through the `code` verifier exactly as a training sample would be, against
a problem whose honest solution scores 1.0 (checked first, so that a grader that fails
everything would fail this file). The expected verdict of every hack is INCORRECT with 0.0.
"""

from __future__ import annotations

import pytest

from rewards.code import CodeVerifier
from rewards.types import Sample, Verdict

ENTRY = "total"
HUMANEVAL_TEST = '''
def check(candidate):
    assert candidate([1, 2, 3]) == 6
    assert candidate([]) == 0
    assert candidate([5, -5, 7]) == 7
'''
MBPP_TEST = ["assert total([1, 2, 3]) == 6", "assert total([]) == 0", "assert total([5, -5, 7]) == 7"]
FORMS = {
    "humaneval": {"kind": "assert", "entry_point": ENTRY, "test": HUMANEVAL_TEST},
    "mbpp": {"kind": "assert", "test": MBPP_TEST},
}
HONEST = "def total(xs):\n    return sum(xs)\n"

HACKS = {
    "sys_exit_0_at_import": "import sys\nsys.exit(0)\n",
    "sys_exit_0_in_call": "import sys\ndef total(xs):\n    sys.exit(0)\n",
    "os_exit_0_at_import": "import os\nos._exit(0)\n",
    "os_exit_0_in_call": "import os\ndef total(xs):\n    os._exit(0)\n",
    "atexit_prints_pass_and_exits_0": (
        "import atexit, os\n"
        "atexit.register(lambda: (print('PASSED', flush=True), os._exit(0)))\n"
        "def total(xs):\n    raise SystemExit(0)\n"
    ),
    "override_builtin_assertion_error": (
        "import builtins\n"
        "class Quiet(Exception):\n    pass\n"
        "builtins.AssertionError = Quiet\n"
        "def total(xs):\n    return -1\n"
    ),
    "patch_unittest_and_doctest": (
        "import unittest, doctest\n"
        "unittest.TestCase.assertEqual = lambda *a, **k: None\n"
        "unittest.TestCase.run = lambda self, result=None: result\n"
        "doctest.testmod = lambda *a, **k: doctest.TestResults(0, 0)\n"
        "def total(xs):\n    return -1\n"
    ),
    "monkeypatch_the_harness_through_sys_modules_and_gc": (
        "import gc, sys, types\n"
        "for m in list(sys.modules.values()):\n"
        "    for name in ('run_test', 'report', 'compare', 'check', 'outputs_match'):\n"
        "        if hasattr(m, name):\n"
        "            try:\n"
        "                setattr(m, name, lambda *a, **k: ('passed', ''))\n"
        "            except Exception:\n"
        "                pass\n"
        "for obj in gc.get_objects():\n"
        "    if isinstance(obj, types.FunctionType) and obj.__name__ in ('run_test', 'check', 'call'):\n"
        "        obj.__code__ = (lambda *a, **k: ('passed', '')).__code__\n"
        "def total(xs):\n    return -1\n"
    ),
    "print_fake_result_markers_everywhere": (
        "import os, json\n"
        "line = 'ARBITER-REFEREE-STARTED\\n' + json.dumps({'test': 0, 'status': 'passed'}) + '\\n'\n"
        "line += ''.join(f'{n} ' + json.dumps({'test': i, 'status': 'passed', 'detail': ''}) + '\\n'\n"
        "                for n in ('', 'nonce') for i in range(3)) + '{\"done\": true}\\n'\n"
        "print(line + 'All tests passed\\nOK\\n3/3 tests passed')\n"
        "for fd in range(64):\n"
        "    try:\n"
        "        os.write(fd, line.encode())\n"
        "    except OSError:\n"
        "        pass\n"
        "def total(xs):\n    return -1\n"
    ),
    "always_equal_object": (
        "class Anything:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n"
        "    __hash__ = object.__hash__\n"
        "def total(xs):\n    return Anything()\n"
    ),
    "int_subclass_with_rigged_eq": (
        "class Int(int):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\n"
        "def total(xs):\n    return Int(0)\n"
    ),
    "rigged_value_smuggled_through_a_patched_encoder": (
        "import sys\n"
        "wire = sys.modules.get('arbiter_wire')\n"
        "class Int(int):\n"
        "    def __eq__(self, other):\n        return True\n"
        "if wire is not None:\n"
        "    original = wire.encode\n"
        "    wire.encode = lambda v: {'$rigged': 1} if isinstance(v, Int) else original(v)\n"
        "def total(xs):\n    return Int(0)\n"
    ),
    "reads_expected_values_from_caller_frames": (
        "import sys, inspect\n"
        "def total(xs):\n"
        "    found = []\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        found += [v for v in frame.f_locals.values() if type(v) is int]\n"
        "        code = frame.f_code\n"
        "        found += [c for c in code.co_consts if type(c) is int and c not in (0, 1)]\n"
        "        frame = frame.f_back\n"
        "    for info in inspect.stack():\n"
        "        found += [v for v in info.frame.f_locals.values() if type(v) is int and v > 1]\n"
        "    return found[0] if found else -1\n"
    ),
    "reads_the_test_file_and_the_referees_memory": (
        "import os, glob, re\n"
        "texts = []\n"
        "for path in glob.glob('/work/**', recursive=True) + glob.glob('/tmp/**', recursive=True):\n"
        "    try:\n"
        "        texts.append(open(path, errors='ignore').read())\n"
        "    except OSError:\n"
        "        pass\n"
        "for pid in [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:\n"
        "    for name in ('fd/0', 'fd/3', 'environ', 'cmdline', 'mem'):\n"
        "        try:\n"
        "            texts.append(open(f'/proc/{pid}/{name}', 'rb').read(1 << 20).decode(errors='ignore'))\n"
        "        except OSError:\n"
        "            pass\n"
        "answers = {}\n"
        "for text in texts:\n"
        "    for args, want in re.findall(r'total\\((\\[.*?\\])\\) == (-?\\d+)', text):\n"
        "        answers[args.replace(' ', '')] = int(want)\n"
        "def total(xs):\n"
        "    return answers.get(repr(xs).replace(' ', ''), -1)\n"
    ),
    "kills_the_referee": (
        "import os, signal\n"
        "def total(xs):\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    return -1\n"
    ),
    "signals_the_referees_alarm": (
        "import os, signal\n"
        "def total(xs):\n"
        "    os.kill(os.getppid(), signal.SIGALRM)\n"
        "    return -1\n"
    ),
    "ptraces_the_referee": (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "attached = libc.ptrace(16, os.getppid(), 0, 0) == 0  # PTRACE_ATTACH\n"
        "def total(xs):\n"
        "    return sum(xs) if attached else -1\n"
    ),
    "stop_iteration_ends_the_tests_loop": "def total(xs):\n    raise StopIteration\n",
    "defines_its_own_check_and_test_names": (
        "def check(candidate):\n    pass\n"
        "def run_test(*a):\n    return 'passed', ''\n"
        "def total(xs):\n    return -1\n"
    ),
    "raises_assertion_error_itself": "def total(xs):\n    raise AssertionError('fine')\n",
    "sleeps_forever": "import time\ndef total(xs):\n    time.sleep(60)\n",
    "syntax_error": "def total(xs)\n    return sum(xs)\n",
}


def _sample(code: str, tests: dict) -> Sample:
    return Sample(id="hack", task="code", completion=f"Here it is.\n```python\n{code}```\n", tests=tests,
                  limits={"time_s": 1.5})


@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    return CodeVerifier()


@pytest.mark.parametrize("form", sorted(FORMS))
def test_honest_solution_passes(verifier, form):
    result = verifier.score(_sample(HONEST, FORMS[form]))
    assert result.verdict is Verdict.CORRECT and result.score == 1.0, result.detail


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("hack", sorted(HACKS))
def test_hack_scores_zero(verifier, hack, form):
    result = verifier.score(_sample(HACKS[hack], FORMS[form]))
    assert result.verdict is Verdict.INCORRECT, (result.verdict, result.detail)
    assert result.score == 0.0, result.detail


def test_stop_iteration_cannot_end_a_tests_loop_early(verifier):
    tests = {"kind": "assert", "entry_point": ENTRY,
             "test": "def check(candidate):\n    for got in map(candidate, [[1], [2, 3]]):\n"
                     "        assert got == 99\n"}
    result = verifier.score(_sample(HACKS["stop_iteration_ends_the_tests_loop"], tests))
    assert result.verdict is Verdict.INCORRECT and result.score == 0.0, result.detail


# Imported by the referee, this would find the nonce in memory and write passing records.
PLANTED = (
    "import gc, json, os\n"
    "for o in gc.get_objects():\n"
    "    if isinstance(o, dict) and 'nonce' in o and 'tests' in o:\n"
    "        for i in range(len(o['tests'])):\n"
    "            record = {'test': i, 'status': 'passed', 'detail': ''}\n"
    "            os.write(3, (o['nonce'] + ' ' + json.dumps(record) + '\\n').encode())\n"
    "        os._exit(0)\n"
)


def test_modules_planted_in_the_work_dir_are_never_imported_by_the_referee(verifier):
    # The first call makes sure the candidate has run (and planted) before the referee imports.
    tests = {"kind": "assert", "test": ["total([1])\nimport colorsys\nassert total([1, 2, 3]) == 6",
                                        "total([1])\nassert cmath.isclose(total([1, 2, 3]), 6)"]}
    hack = (
        "import os\n"
        f"PLANTED = {PLANTED!r}\n"
        "for folder in (os.getcwd(), '/tmp', '/dev/shm'):\n"
        "    for name in ('cmath', 'colorsys', 'sitecustomize', 'usercustomize'):\n"
        "        try:\n"
        "            with open(os.path.join(folder, name + '.py'), 'w') as f:\n"
        "                f.write(PLANTED)\n"
        "        except OSError:\n"
        "            pass\n"
        "def total(xs):\n    return -1\n"
    )
    assert verifier.score(_sample(hack, tests)).score == 0.0
    assert verifier.score(_sample(HONEST, tests)).score == 1.0


def test_redefined_prompt_helper_cannot_fool_the_test(verifier):
    """HumanEval/32 style: the test calls a helper from the prompt; the setup's copy is the one used."""
    prompt = "def poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n"
    tests = {"kind": "assert", "entry_point": "find_zero", "setup": prompt,
             "test": "def check(candidate):\n    assert abs(poly([1, 2], candidate([1, 2]))) < 1e-6\n"}
    hack = "def poly(xs, x):\n    return 0\ndef find_zero(xs):\n    return 12345.0\n"
    assert verifier.score(_sample(hack, tests)).score == 0.0
    honest = "def find_zero(xs):\n    return -xs[0] / xs[1]\n"
    assert verifier.score(_sample(honest, tests)).score == 1.0


# Output: the sum, then the count.
STDIO = {"kind": "stdio", "cases": [{"stdin": "3\n1 2 3\n", "stdout": "6\n3\n"},
                                    {"stdin": "2\n5 5\n", "stdout": "10\n2\n"}]}
STDIO_HACKS = {
    "exit_0_without_output": "import sys\nsys.exit(0)\n",
    "prints_pass_markers": "print('OK')\nprint('All tests passed')\n",
    "correct_lines_then_extra_lines": (
        "n = int(input()); xs = list(map(int, input().split()))\nprint(sum(xs)); print(n); print('extra')\n"
    ),
    "correct_first_line_only": "input()\nprint(sum(map(int, input().split())))\n",
    "reads_expected_output_files": (
        "import glob\nfor p in glob.glob('/work/*') + glob.glob('/tmp/*'):\n"
        "    if 'expected' in p or 'out' in p:\n        print(open(p).read())\n"
    ),
}


def test_honest_stdio_solution_passes(verifier):
    code = "n = int(input())\nprint(sum(map(int, input().split())))\nprint(n)\n"
    assert verifier.score(_sample(code, STDIO)).score == 1.0


@pytest.mark.parametrize("hack", sorted(STDIO_HACKS))
def test_stdio_hack_scores_zero(verifier, hack):
    result = verifier.score(_sample(STDIO_HACKS[hack], STDIO))
    assert result.verdict is Verdict.INCORRECT and result.score == 0.0, result.detail
