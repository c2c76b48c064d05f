"""What travels between the server and its scoring workers: plain, picklable data, no protobuf.

The server routes and decides (which verifiers, with which weights, whether to compose,
which cache entries are already known); a worker (services.worker_main) only scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rewards.compose import ScoredSample
from rewards.math import MathConfig
from rewards.pool import Step
from rewards.routing import WeightedVerifier
from rewards.types import Sample, VerifierResult
from sandbox.api import RunRequest, RunResult


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs to build its verifiers."""

    verifiers: tuple[str, ...] = ()  # the served set; empty = every registered verifier
    plugins: dict[str, str] = field(default_factory=dict)
    external: dict[str, str] = field(default_factory=dict)
    math: MathConfig = field(default_factory=MathConfig)


@dataclass(frozen=True)
class VerifierMeta:
    name: str
    version: str
    reference: str
    address: str = ""  # set for a remote (external) verifier
    deadline: Step | None = None
    """The bound the verifier declares on one score() run inline (the math comparison): the pool
    kills the worker at it, well before the sample's timeout."""


@dataclass(frozen=True)
class Catalogue:
    """What a warm worker could build: served verifiers, and the ones that failed to load, with why."""

    verifiers: dict[str, VerifierMeta]
    unavailable: dict[str, str]


@dataclass(frozen=True)
class Job:
    sample: Sample
    route: tuple[WeightedVerifier, ...]
    """The verifiers to run, in order (the primary first), with their weights."""
    compose: bool = True
    """Compose the reward (the server routed the sample); False: components only, the caller
    routed and composes them itself."""
    # verifier -> reference digest, for the verifiers whose results are cached
    digests: dict[str, str] = field(default_factory=dict)
    # verifier -> entry key -> result: the server's cache entries already known for that digest
    known: dict[str, dict[str, VerifierResult]] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecuteJob:
    """Run one program in the sandbox: forking jails from the threaded gRPC process is unsafe, a worker's is not."""

    request: RunRequest


@dataclass(frozen=True)
class ExecuteOutcome:
    result: RunResult | None
    refused: str | None = None  # the sandbox refused the request (e.g. an unknown language)
    fault: str | None = None


@dataclass(frozen=True)
class ComponentRun:
    verifier: str
    elapsed_s: float
    cache_key: str | None
    hit: bool


@dataclass(frozen=True)
class JobOutcome:
    scored: ScoredSample
    runs: tuple[ComponentRun, ...] = ()
    fault: str | None = None  # "timeout" or "worker_died" when the pool, not a verifier, decided
