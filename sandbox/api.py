"""The execution contract: what to run, under which limits, and what came of it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, get_args

Network = Literal["none", "private_loopback"]


class Status(enum.Enum):
    OK = "ok"
    RUNTIME_ERROR = "runtime_error"
    COMPILE_ERROR = "compile_error"
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    SANDBOX_ERROR = "sandbox_error"


def encodable(text: str) -> str:
    """`text` with each code point UTF-8 cannot encode (a lone surrogate, which a JSON escape or a
    surrogateescape decode of any bytes yields) spelled as its backslash escape, so that it can be
    written to a file, a protobuf string or a log. Apply it where a candidate's text enters."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class Limits:
    """Per-run limits; the defaults are safe for grading one test of a contest-sized program."""

    wall_time_s: float = 10.0
    cpu_time_s: float = 5.0
    memory_mib: int = 512
    max_processes: int = 32
    max_output_bytes: int = 1 << 20
    max_file_size_mib: int = 16
    max_open_files: int = 64
    compile_time_s: float = 30.0
    # "private_loopback": TCP/UDP on the jail's own lo (its own network namespace: nothing of the
    # host, the host's 127.0.0.1 included, is reachable) and route netlink to query it;
    # "none": unix sockets only. Raw, packet and every other family are denied either way.
    network: Network = "private_loopback"

    def __post_init__(self) -> None:
        if self.network not in get_args(Network):
            raise ValueError(f"Limits.network must be one of {list(get_args(Network))}, not {self.network!r}")
        for name in ("wall_time_s", "cpu_time_s", "memory_mib", "max_processes", "max_output_bytes",
                     "max_file_size_mib", "max_open_files", "compile_time_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")


@dataclass(frozen=True)
class RunRequest:
    language: str  # a key of sandbox.languages.LANGUAGES: "python", "cpp"
    source: str
    stdin: str = ""
    limits: Limits = field(default_factory=Limits)
    # Extra read-only files placed in the work dir; bytes for binary content (precompiled .pyc).
    files: dict[str, str | bytes] = field(default_factory=dict)
    # True: the program gets a private pipe as fd 3 (env ARBITER_RESULT_FD=3) and whatever it writes
    # there comes back as RunResult.result_bytes, out of band of exit code and stdout.
    result_fd: bool = False


@dataclass(frozen=True)
class RunResult:
    status: Status
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    wall_time_s: float
    cpu_time_s: float
    peak_memory_mib: float | None
    detail: str = ""
    result_bytes: bytes | None = None  # what was written to fd 3 when RunRequest.result_fd was set


@dataclass(frozen=True)
class Provenance:
    """Where a verdict came from: what ran the program, under which limits, with which toolchain."""

    backend: str  # Backend.name: "bwrap", "bwrap-pool", "docker"
    isolation: str  # Backend.describe()
    language: str
    toolchain: str  # the toolchain's version line, "Python 3.11.2"
    limits: Limits
    image_id: str | None = None  # the Docker image's id, for the Docker backend

    def to_record(self) -> dict[str, object]:
        record: dict[str, object] = {
            "backend": self.backend, "isolation": self.isolation, "language": self.language,
            "toolchain": self.toolchain, "limits": dict(vars(self.limits))}
        if self.image_id is not None:
            record["image_id"] = self.image_id
        return record
