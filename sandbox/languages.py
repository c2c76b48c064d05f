"""Languages the sandbox runs: one row per language, nothing else to touch to add one.

A row says which file the source goes to, how to compile it (optional) and how to run it. Paths
are those inside the jail: the work dir is /work and the host's /usr is mounted read-only, so a
toolchain installed on the host under /usr (./scripts/setup installs each row's Debian package)
is available inside; `available()` says which are, and a request for one that is not fails
with a message naming the package.

Runtimes that reserve far more address space than they use (the JVM's heap, class space and code
cache, V8's code range) get `address_space_extra_mib` on top of the program's limit for
RLIMIT_AS only: their heap is capped by a flag at the program's limit ({memory_mib} in argv) and
the cgroup still holds the run's real memory to it. Runtimes that start threads of their own (Go's
scheduler, the JVM's GC and compilers, V8's platform workers, rustc's codegen) get `extra_processes` on top of
the process limit, which counts threads. A compiled language's artifact is cached by (compiler
command, source), so one program run on many inputs compiles once.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

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
    # Binaries the language needs, and the Debian package that brings them.
    requires: tuple[str, ...] = ()
    debian_package: str = ""
    address_space_extra_mib: int = 0
    extra_processes: int = 0
    # Set for runtimes whose threads take RLIMIT_STACK as their stack size (glibc's pthreads:
    # node, the go tool, the JVM): a stack as large as the memory limit would fit one thread.
    thread_stack_mib: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The compile step runs on its own, under its own limits, and hands the artifact over.
        if (self.compile_argv is None) != (self.artifact is None):
            raise ValueError(f"language {self.name!r}: compile_argv and artifact go together")

    def missing(self) -> list[str]:
        """The required binaries this host lacks."""
        return [path for path in self.requires if not os.access(path, os.X_OK)]


# Go's build and runtime would start a thread per core; the collector aims below the memory limit.
_GO_ENV = {"GOCACHE": "/tmp/go-cache", "GOPATH": "/tmp/go", "GOMAXPROCS": "2", "CGO_ENABLED": "0",
           "GO111MODULE": "off", "GOMEMLIMIT": "{memory_mib}MiB"}
_JVM_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:CICompilerCount=1", "-XX:-UsePerfData",
                "-XX:ReservedCodeCacheSize=64m", "-XX:CompressedClassSpaceSize=64m", "-Xshare:auto")
# javac and jar are JVMs too: the same options keep them inside the compile step's limits.
_JVM_TOOL_OPTIONS = " ".join(f"-J{option}" for option in ("-Xmx512m", *_JVM_OPTIONS))

LANGUAGES: dict[str, Language] = {
    "python": Language(
        name="python", source_file="solution.py",
        run_argv=(PYTHON, "-E", "-s", "solution.py"), warm_python=True,
        version_argv=(PYTHON, "--version"), requires=(PYTHON,), debian_package="python3",
    ),
    "cpp": Language(
        name="cpp", source_file="main.cpp",
        compile_argv=("/usr/bin/g++", "-std=c++17", "-O2", "-pipe", "-o", "main", "main.cpp"),
        run_argv=("./main",), artifact="main",
        version_argv=("/usr/bin/g++", "--version"), requires=("/usr/bin/g++",), debian_package="g++",
    ),
    "c": Language(
        name="c", source_file="main.c",
        compile_argv=("/usr/bin/gcc", "-std=gnu17", "-O2", "-pipe", "-o", "main", "main.c", "-lm"),
        run_argv=("./main",), artifact="main",
        version_argv=("/usr/bin/gcc", "--version"), requires=("/usr/bin/gcc",), debian_package="gcc",
    ),
    "rust": Language(
        name="rust", source_file="main.rs",
        compile_argv=("/usr/bin/rustc", "--edition", "2021", "-O", "-o", "main", "main.rs"),
        run_argv=("./main",), artifact="main",
        version_argv=("/usr/bin/rustc", "--version"), requires=("/usr/bin/rustc", "/usr/bin/cc"),
        debian_package="rustc", extra_processes=32,  # rustc's codegen threads, one per unit
    ),
    "go": Language(
        name="go", source_file="main.go",
        compile_argv=("/usr/bin/go", "build", "-o", "main", "main.go"),
        run_argv=("./main",), artifact="main",
        version_argv=("/usr/bin/go", "version"), requires=("/usr/bin/go",), debian_package="golang-go",
        address_space_extra_mib=1024, extra_processes=32, thread_stack_mib=8, env=_GO_ENV,
    ),
    "javascript": Language(
        name="javascript", source_file="main.js",
        run_argv=("/usr/bin/node", "--max-old-space-size={memory_mib}", "main.js"),
        version_argv=("/usr/bin/node", "--version"), requires=("/usr/bin/node",), debian_package="nodejs",
        address_space_extra_mib=1024, extra_processes=16, thread_stack_mib=8,
    ),
    "java": Language(
        name="java", source_file="Main.java",
        compile_argv=("/bin/sh", "-c", f"javac {_JVM_TOOL_OPTIONS} -encoding UTF-8 -d classes Main.java"
                      f" && jar {_JVM_TOOL_OPTIONS} --create --file main.jar -C classes ."),
        run_argv=("/usr/bin/java", "-Xmx{memory_mib}m", *_JVM_OPTIONS, "-cp", "main.jar", "Main"),
        artifact="main.jar",
        version_argv=("/usr/bin/javac", "-version"), requires=("/usr/bin/java", "/usr/bin/javac", "/usr/bin/jar"),
        debian_package="default-jdk-headless", address_space_extra_mib=1024, extra_processes=32, thread_stack_mib=8,
        env={"MALLOC_ARENA_MAX": "2"},  # glibc's 64 MiB arena per thread would eat the address space
    ),
}


def get_language(name: str) -> Language:
    """The row of a language this host can run; an unknown or unavailable one is a ValueError."""
    try:
        language = LANGUAGES[name]
    except KeyError:
        raise ValueError(f"unknown language {name!r}; known: {sorted(LANGUAGES)}") from None
    missing = language.missing()
    if missing:
        raise ValueError(f"language {name!r} is not available here: {', '.join(missing)} not found "
                         f"(./scripts/setup installs the Debian package {language.debian_package})")
    return language


def available() -> list[str]:
    """The languages whose toolchains this host has, in table order."""
    return [name for name, language in LANGUAGES.items() if not language.missing()]


@functools.cache
def toolchain_version(name: str) -> str:
    """The first line of the language's toolchain version report ("Python 3.11.2"), or why not."""
    argv = LANGUAGES[name].version_argv
    if not argv:
        return "unknown"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({type(exc).__name__})"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else f"unknown (exit {done.returncode})"
