"""Every language of sandbox/languages.py end to end: right and wrong programs through
`arbiter score --verifier code`, runtimes inside small limits, and a clear error for a missing one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from arbiter.cli import main
from sandbox import Limits, PoolConfig, RunRequest, Sandbox, Status, describe
from sandbox.languages import LANGUAGES, Language, available, get_language
from sandbox.plan import compile_key

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "code_languages.jsonl"
ROWS = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]
NEW_LANGUAGES = ("c", "rust", "go", "javascript", "java")


def need(language: str) -> None:
    if language not in available():
        pytest.skip(f"{language}: toolchain missing ({', '.join(LANGUAGES[language].missing())}); ./scripts/setup")


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> dict[str, dict]:
    """Every example scored once by the `arbiter score` command, as a user runs it."""
    out = tmp_path_factory.mktemp("score") / "out.jsonl"
    assert main(["score", "--input", str(EXAMPLES), "--output", str(out), "--verifier", "code"]) == 0
    return {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}


@pytest.fixture(scope="module")
def box():
    with Sandbox(PoolConfig(pool_size=1)) as sandbox:
        yield sandbox


def test_examples_cover_a_right_and_a_wrong_program_in_every_new_language():
    assert sorted(r["id"] for r in ROWS) == sorted(f"{lang}-stdio-{kind}" for lang in NEW_LANGUAGES
                                                   for kind in ("right", "wrong"))


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_right_program_passes_and_wrong_one_fails_through_arbiter_score(scored, row):
    need(row["language"])
    record = scored[row["id"]]
    assert (record["verdict"], record["reward"]) == (row["metadata"]["expected_verdict"],
                                                     row["metadata"]["expected_reward"]), record
    code = record["components"]["code"]
    assert code["provenance"]["language"] == row["language"] and code["provenance"]["toolchain"]
    if row["metadata"]["expected_verdict"] == "incorrect":
        failed = [t for t in code["tests"] if t["status"] == "failed"]
        assert failed and failed[0]["input"] == "1\n-5\n" and failed[0]["expected"] == "-5 -5\n"


def test_describe_lists_the_available_languages(box):
    line = describe(box)
    for language in available():
        assert f"{language} (" in line
    assert "python (Python 3" in line


def test_a_language_without_its_toolchain_is_a_clear_error(monkeypatch, box):
    monkeypatch.setitem(LANGUAGES, "cobol", Language(
        name="cobol", source_file="main.cob", run_argv=("./main",), compile_argv=("/usr/bin/cobc", "main.cob"),
        artifact="main", requires=("/usr/bin/cobc",), debian_package="gnucobol"))
    with pytest.raises(ValueError, match=r"'cobol' is not available here: /usr/bin/cobc not found.*gnucobol"):
        get_language("cobol")
    with pytest.raises(ValueError, match="not available"):
        box.run(RunRequest("cobol", "x"))
    assert "cobol" not in available()


JAVA_ALLOC = ("import java.util.*;\npublic class Main { public static void main(String[] a) {\n"
              "  List<long[]> keep = new ArrayList<>();\n  while (true) keep.add(new long[1 << 20]);\n} }\n")
JS_ALLOC = "const keep = []; while (true) keep.push(new Array(1 << 20).fill(1.5));\n"
GO_THREADS = ("package main\nimport (\"fmt\"; \"sync\")\nfunc main() {\n var wg sync.WaitGroup\n var mu sync.Mutex\n"
              " total := 0\n for i := 0; i < 200; i++ {\n  wg.Add(1)\n  go func(i int) { defer wg.Done(); mu.Lock();"
              " total += i; mu.Unlock() }(i)\n }\n wg.Wait()\n fmt.Println(total)\n}\n")
JAVA_THREADS = ("public class Main { public static void main(String[] a) throws Exception {\n"
                "  Thread[] ts = new Thread[8]; final int[] n = {0};\n"
                "  for (int i = 0; i < 8; i++) { ts[i] = new Thread(() -> { synchronized (n) { n[0]++; } });"
                " ts[i].start(); }\n  for (Thread t : ts) t.join();\n  System.out.println(n[0]);\n} }\n")
SMALL = Limits(wall_time_s=20.0, cpu_time_s=10.0, memory_mib=128, max_processes=16)


@pytest.mark.parametrize(("language", "source", "stdout"), [
    ("go", GO_THREADS, "19900\n"), ("java", JAVA_THREADS, "8\n"),
    ("javascript", "console.log([1, 2, 3].map(x => x * x).join(' '))\n", "1 4 9\n"),
], ids=["go-goroutines", "java-threads", "javascript"])
def test_runtimes_with_threads_and_reservations_run_under_small_limits(box, language, source, stdout):
    need(language)
    result = box.run(RunRequest(language, source, limits=SMALL))
    assert (result.status, result.stdout) == (Status.OK, stdout), result.stderr[-2000:]


@pytest.mark.parametrize(("language", "source"), [("java", JAVA_ALLOC), ("javascript", JS_ALLOC)])
def test_managed_heap_growing_past_the_limit_is_memory_limit(box, language, source):
    need(language)
    result = box.run(RunRequest(language, source, limits=SMALL))
    assert result.status is Status.MEMORY_LIMIT, (result.detail, result.stderr[-1000:])


@pytest.mark.parametrize("language", ["rust", "go", "java", "c"])
def test_a_compiled_program_is_compiled_once_for_many_inputs(box, language):
    need(language)
    source = next(r for r in ROWS if r["id"] == f"{language}-stdio-right")["completion"]
    source = source.split(f"```{language}\n", 1)[1].rsplit("```", 1)[0]
    first = box.run(RunRequest(language, source, stdin="2\n3 4\n", limits=SMALL))
    assert first.status is Status.OK, (first.detail, first.stderr[-2000:])
    assert box._backend.compile_cache.get(compile_key(RunRequest(language, source))) is not None
    again = box.run(RunRequest(language, source, stdin="1\n7\n", limits=SMALL))
    assert (first.stdout, again.stdout) == ("7 4\n", "7 7\n")
