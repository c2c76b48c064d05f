from arbiter.v1 import common_pb2 as _common_pb2
from arbiter.v1 import sandbox_pb2 as _sandbox_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Reference(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFERENCE_UNSPECIFIED: _ClassVar[Reference]
    REFERENCE_ANSWER: _ClassVar[Reference]
    REFERENCE_TESTS: _ClassVar[Reference]
    REFERENCE_NONE: _ClassVar[Reference]
REFERENCE_UNSPECIFIED: Reference
REFERENCE_ANSWER: Reference
REFERENCE_TESTS: Reference
REFERENCE_NONE: Reference

class Sample(_message.Message):
    __slots__ = ("id", "task", "completion", "prompt", "answer", "tests_json", "language", "limits_json", "metadata_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TESTS_JSON_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    task: str
    completion: str
    prompt: str
    answer: str
    tests_json: str
    language: str
    limits_json: str
    metadata_json: str
    def __init__(self, id: _Optional[str] = ..., task: _Optional[str] = ..., completion: _Optional[str] = ..., prompt: _Optional[str] = ..., answer: _Optional[str] = ..., tests_json: _Optional[str] = ..., language: _Optional[str] = ..., limits_json: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("sample", "verifiers")
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    verifiers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ..., verifiers: _Optional[_Iterable[str]] = ...) -> None: ...

class VerifierResult(_message.Message):
    __slots__ = ("verdict", "score", "detail", "answer", "audit", "tests", "provenance")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    verdict: _common_pb2.Verdict
    score: float
    detail: str
    answer: str
    audit: _common_pb2.Verdict
    tests: _containers.RepeatedCompositeFieldContainer[_sandbox_pb2.TestResult]
    provenance: _sandbox_pb2.Provenance
    def __init__(self, verdict: _Optional[_Union[_common_pb2.Verdict, str]] = ..., score: _Optional[float] = ..., detail: _Optional[str] = ..., answer: _Optional[str] = ..., audit: _Optional[_Union[_common_pb2.Verdict, str]] = ..., tests: _Optional[_Iterable[_Union[_sandbox_pb2.TestResult, _Mapping]]] = ..., provenance: _Optional[_Union[_sandbox_pb2.Provenance, _Mapping]] = ...) -> None: ...

class Component(_message.Message):
    __slots__ = ("verifier", "result", "cached")
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    verifier: str
    result: VerifierResult
    cached: bool
    def __init__(self, verifier: _Optional[str] = ..., result: _Optional[_Union[VerifierResult, _Mapping]] = ..., cached: _Optional[bool] = ...) -> None: ...

class FieldError(_message.Message):
    __slots__ = ("field", "message")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    field: str
    message: str
    def __init__(self, field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("id", "reward", "verdict", "components", "elapsed_ms", "detail", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    reward: float
    verdict: _common_pb2.Verdict
    components: _containers.RepeatedCompositeFieldContainer[Component]
    elapsed_ms: float
    detail: str
    error: FieldError
    def __init__(self, id: _Optional[str] = ..., reward: _Optional[float] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, str]] = ..., components: _Optional[_Iterable[_Union[Component, _Mapping]]] = ..., elapsed_ms: _Optional[float] = ..., detail: _Optional[str] = ..., error: _Optional[_Union[FieldError, _Mapping]] = ...) -> None: ...

class ScoreBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[ScoreRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[ScoreRequest, _Mapping]]] = ...) -> None: ...

class ScoreBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ...) -> None: ...

class VerifierInfo(_message.Message):
    __slots__ = ("name", "version", "reference", "address")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    reference: Reference
    address: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., reference: _Optional[_Union[Reference, str]] = ..., address: _Optional[str] = ...) -> None: ...

class TaskRoute(_message.Message):
    __slots__ = ("task", "verifiers")
    class Weighted(_message.Message):
        __slots__ = ("verifier", "weight")
        VERIFIER_FIELD_NUMBER: _ClassVar[int]
        WEIGHT_FIELD_NUMBER: _ClassVar[int]
        verifier: str
        weight: float
        def __init__(self, verifier: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    task: str
    verifiers: _containers.RepeatedCompositeFieldContainer[TaskRoute.Weighted]
    def __init__(self, task: _Optional[str] = ..., verifiers: _Optional[_Iterable[_Union[TaskRoute.Weighted, _Mapping]]] = ...) -> None: ...

class CacheStats(_message.Message):
    __slots__ = ("hits", "misses", "entries", "capacity", "hit_rate")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    hits: int
    misses: int
    entries: int
    capacity: int
    hit_rate: float
    def __init__(self, hits: _Optional[int] = ..., misses: _Optional[int] = ..., entries: _Optional[int] = ..., capacity: _Optional[int] = ..., hit_rate: _Optional[float] = ...) -> None: ...

class ListVerifiersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVerifiersResponse(_message.Message):
    __slots__ = ("verifiers", "tasks", "cache")
    VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    verifiers: _containers.RepeatedCompositeFieldContainer[VerifierInfo]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskRoute]
    cache: CacheStats
    def __init__(self, verifiers: _Optional[_Iterable[_Union[VerifierInfo, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[TaskRoute, _Mapping]]] = ..., cache: _Optional[_Union[CacheStats, _Mapping]] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("verifier", "cache")
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    verifier: VerifierInfo
    cache: CacheStats
    def __init__(self, verifier: _Optional[_Union[VerifierInfo, _Mapping]] = ..., cache: _Optional[_Union[CacheStats, _Mapping]] = ...) -> None: ...
