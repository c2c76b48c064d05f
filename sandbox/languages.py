"""Languages the sandbox runs: one row per language, nothing else to touch to add one.

A row says which file the source goes to, how to compile it (optional) and how to run it. Paths
are those inside the jail: the work dir is /work and the host's /usr is mounted read-only, so a
toolchain installed on the host under /usr is available inside.

To add a language, add a row, e.g. Rust:

    "rust": Language(name="rust", source_file="main.rs",
                     compile_argv=("/usr/bin/rustc", "-O", "-o", "main", "main.rs"),
                     run_argv=("./main",), artifact="main"),

and a test in tests/integration/test_sandbox_languages.py.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass

WORK_DIR = "/work"
PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class Language:
    name: str
    source_file: str
    run_argv: tuple[str, ...]
    compile_argv: tuple[str, ...] | None = None
    # What the compile step produces (in the work dir); cached by source so that running one
    # program on many inputs compiles it once.
    artifact: str | None = None
    # True: run the source inside the jail's already-started interpreter (a fork of it) instead of
    # exec'ing run_argv; same semantics as `python3 file` minus ~12 ms of start-up.
    warm_python: bool = False
    # The toolchain's version report, for a verdict's provenance; run on the host, whose /usr
    # the jail mounts, so it names the very binaries the jail runs.
    version_argv: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The compile step runs on its own, under its own limits, and hands the artifact over.
        if (self.compile_argv is None) != (self.artifact is None):
            raise ValueError(f"language {self.name!r}: compile_argv and artifact go together")


LANGUAGES: dict[str, Language] = {
    "python": Language(
        name="python",
        source_file="solution.py",
        run_argv=(PYTHON, "-E", "-s", "solution.py"),
        warm_python=True,
        version_argv=(PYTHON, "--version"),
    ),
    "cpp": Language(
        name="cpp",
        source_file="main.cpp",
        compile_argv=("/usr/bin/g++", "-std=c++17", "-O2", "-pipe", "-o", "main", "main.cpp"),
        run_argv=("./main",),
        artifact="main",
        version_argv=("/usr/bin/g++", "--version"),
    ),
}


def get_language(name: str) -> Language:
    try:
        return LANGUAGES[name]
    except KeyError:
        raise ValueError(f"unknown language {name!r}; known: {sorted(LANGUAGES)}") from None


@functools.cache
def toolchain_version(name: str) -> str:
    """The first line of the language's toolchain version report ("Python 3.11.2"), or why not."""
    argv = get_language(name).version_argv
    if not argv:
        return "unknown"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({type(exc).__name__})"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else f"unknown (exit {done.returncode})"
