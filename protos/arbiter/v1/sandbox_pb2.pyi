from arbiter.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_OK: _ClassVar[RunStatus]
    RUN_STATUS_RUNTIME_ERROR: _ClassVar[RunStatus]
    RUN_STATUS_COMPILE_ERROR: _ClassVar[RunStatus]
    RUN_STATUS_TIME_LIMIT: _ClassVar[RunStatus]
    RUN_STATUS_MEMORY_LIMIT: _ClassVar[RunStatus]
    RUN_STATUS_OUTPUT_LIMIT: _ClassVar[RunStatus]
    RUN_STATUS_SANDBOX_ERROR: _ClassVar[RunStatus]

class TestStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEST_STATUS_UNSPECIFIED: _ClassVar[TestStatus]
    TEST_STATUS_PASSED: _ClassVar[TestStatus]
    TEST_STATUS_FAILED: _ClassVar[TestStatus]
    TEST_STATUS_RUNTIME_ERROR: _ClassVar[TestStatus]
    TEST_STATUS_TIME_LIMIT: _ClassVar[TestStatus]
    TEST_STATUS_MEMORY_LIMIT: _ClassVar[TestStatus]
    TEST_STATUS_OUTPUT_LIMIT: _ClassVar[TestStatus]
    TEST_STATUS_SKIPPED: _ClassVar[TestStatus]
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_OK: RunStatus
RUN_STATUS_RUNTIME_ERROR: RunStatus
RUN_STATUS_COMPILE_ERROR: RunStatus
RUN_STATUS_TIME_LIMIT: RunStatus
RUN_STATUS_MEMORY_LIMIT: RunStatus
RUN_STATUS_OUTPUT_LIMIT: RunStatus
RUN_STATUS_SANDBOX_ERROR: RunStatus
TEST_STATUS_UNSPECIFIED: TestStatus
TEST_STATUS_PASSED: TestStatus
TEST_STATUS_FAILED: TestStatus
TEST_STATUS_RUNTIME_ERROR: TestStatus
TEST_STATUS_TIME_LIMIT: TestStatus
TEST_STATUS_MEMORY_LIMIT: TestStatus
TEST_STATUS_OUTPUT_LIMIT: TestStatus
TEST_STATUS_SKIPPED: TestStatus

class Limits(_message.Message):
    __slots__ = ("wall_time_s", "cpu_time_s", "memory_mib", "max_processes", "max_output_bytes", "max_file_size_mib", "max_open_files", "compile_time_s", "network")
    WALL_TIME_S_FIELD_NUMBER: _ClassVar[int]
    CPU_TIME_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    MAX_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_FILE_SIZE_MIB_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_FILES_FIELD_NUMBER: _ClassVar[int]
    COMPILE_TIME_S_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    wall_time_s: float
    cpu_time_s: float
    memory_mib: int
    max_processes: int
    max_output_bytes: int
    max_file_size_mib: int
    max_open_files: int
    compile_time_s: float
    network: str
    def __init__(self, wall_time_s: _Optional[float] = ..., cpu_time_s: _Optional[float] = ..., memory_mib: _Optional[int] = ..., max_processes: _Optional[int] = ..., max_output_bytes: _Optional[int] = ..., max_file_size_mib: _Optional[int] = ..., max_open_files: _Optional[int] = ..., compile_time_s: _Optional[float] = ..., network: _Optional[str] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("language", "source", "stdin", "limits", "files", "result_fd")
    class FilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    RESULT_FD_FIELD_NUMBER: _ClassVar[int]
    language: str
    source: str
    stdin: str
    limits: Limits
    files: _containers.ScalarMap[str, str]
    result_fd: bool
    def __init__(self, language: _Optional[str] = ..., source: _Optional[str] = ..., stdin: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., files: _Optional[_Mapping[str, str]] = ..., result_fd: _Optional[bool] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("status", "exit_code", "signal", "stdout", "stderr", "wall_time_s", "cpu_time_s", "peak_memory_mib", "detail", "result_bytes")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_S_FIELD_NUMBER: _ClassVar[int]
    CPU_TIME_S_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    RESULT_BYTES_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    exit_code: int
    signal: int
    stdout: str
    stderr: str
    wall_time_s: float
    cpu_time_s: float
    peak_memory_mib: float
    detail: str
    result_bytes: bytes
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., wall_time_s: _Optional[float] = ..., cpu_time_s: _Optional[float] = ..., peak_memory_mib: _Optional[float] = ..., detail: _Optional[str] = ..., result_bytes: _Optional[bytes] = ...) -> None: ...

class GradeRequest(_message.Message):
    __slots__ = ("language", "source", "tests_json", "time_s", "memory_mib")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TESTS_JSON_FIELD_NUMBER: _ClassVar[int]
    TIME_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    language: str
    source: str
    tests_json: str
    time_s: float
    memory_mib: int
    def __init__(self, language: _Optional[str] = ..., source: _Optional[str] = ..., tests_json: _Optional[str] = ..., time_s: _Optional[float] = ..., memory_mib: _Optional[int] = ...) -> None: ...

class GradeResponse(_message.Message):
    __slots__ = ("verdict", "score", "detail", "tests", "provenance")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    verdict: _common_pb2.Verdict
    score: float
    detail: str
    tests: _containers.RepeatedCompositeFieldContainer[TestResult]
    provenance: Provenance
    def __init__(self, verdict: _Optional[_Union[_common_pb2.Verdict, str]] = ..., score: _Optional[float] = ..., detail: _Optional[str] = ..., tests: _Optional[_Iterable[_Union[TestResult, _Mapping]]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ...) -> None: ...

class TestResult(_message.Message):
    __slots__ = ("index", "status", "time_s", "detail", "input", "expected", "actual", "stderr_tail")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIME_S_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    STDERR_TAIL_FIELD_NUMBER: _ClassVar[int]
    index: int
    status: TestStatus
    time_s: float
    detail: str
    input: str
    expected: str
    actual: str
    stderr_tail: str
    def __init__(self, index: _Optional[int] = ..., status: _Optional[_Union[TestStatus, str]] = ..., time_s: _Optional[float] = ..., detail: _Optional[str] = ..., input: _Optional[str] = ..., expected: _Optional[str] = ..., actual: _Optional[str] = ..., stderr_tail: _Optional[str] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("backend", "isolation", "language", "toolchain", "limits", "image_id")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TOOLCHAIN_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    backend: str
    isolation: str
    language: str
    toolchain: str
    limits: Limits
    image_id: str
    def __init__(self, backend: _Optional[str] = ..., isolation: _Optional[str] = ..., language: _Optional[str] = ..., toolchain: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., image_id: _Optional[str] = ...) -> None: ...
