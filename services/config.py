"""Frozen configs for the servicer, the standalone server and the client.

Each config is built from a plain mapping (YAML, CLI) by `from_dict` (arbiter.config,
re-exported here), which rejects unknown keys and wrong types naming the dotted path of the
offender and calls every level's `validate()`; `check(config)` validates one built in code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from arbiter.config import ConfigError
from arbiter.config import check as check  # re-exported with from_dict: public here
from arbiter.config import from_dict as from_dict
from rewards.math import MathConfig
from rewards.registry import validate_name
from rewards.routing import RoutingConfig
from sandbox.api import Limits


def _default_caps() -> Limits:
    """The most a Sandbox.Execute/Grade request may ask for; more is INVALID_ARGUMENT."""
    return Limits(wall_time_s=60.0, cpu_time_s=30.0, memory_mib=2048, max_processes=64, max_output_bytes=16 << 20,
                  max_file_size_mib=64, max_open_files=256, compile_time_s=60.0)


@dataclass(frozen=True)
class ScoringConfig:
    """What one servicer serves and how hard it may be pushed; shared by every host."""

    worker_processes: int = 2
    """Processes that run reward code; kept warm, replaced when one dies or overruns."""
    verifiers: tuple[str, ...] = ()
    """Verifiers this servicer serves; empty means every registered one."""
    plugins: dict[str, str] = field(default_factory=dict)
    """Extra in-process verifiers, name -> "module:Factory", as if from the entry-point group."""
    external: dict[str, str] = field(default_factory=dict)
    """Remote verifiers, name -> "host:port" of a server implementing arbiter.v1.Verifier."""
    routing: dict[str, dict[str, float]] = field(default_factory=dict)
    """task -> {verifier: weight}, the primary first, for requests that name no verifiers; empty uses
    rewards.routing.DEFAULT_ROUTING."""
    sample_timeout_s: float = 120.0
    """A sample still scoring after this long has its worker killed and gets a TIMEOUT verdict.
    A backstop above the verifiers' own limits: a step a verifier runs inline under its own
    deadline (the math comparison, MathConfig.timeout_s) is killed at that deadline instead;
    the code verifier's programs are bounded by the sandbox (wall time x tests)."""
    max_in_flight_samples: int = 1024
    """Samples admitted but not yet answered; a unary or batch call beyond it gets RESOURCE_EXHAUSTED."""
    max_batch_items: int = 1024
    max_request_bytes: int = 32 << 20
    max_completion_chars: int = 256 * 1024
    cache_entries: int = 100_000
    """Verdict cache capacity in entries (one verifier result each); 0 disables the cache."""
    sandbox_caps: Limits = field(default_factory=_default_caps)
    """The most a Sandbox.Execute/Grade request may ask for, per limit; more is INVALID_ARGUMENT."""
    math: MathConfig = field(default_factory=MathConfig)
    """The math verifier's config (`math.audit_fraction`, `math.timeout_s`, ...); it compares inline
    in the worker processes, so `math.workers` starts none here."""

    @property
    def routes(self) -> RoutingConfig:
        return RoutingConfig.from_tasks(self.routing)

    def validate(self) -> None:
        for name in ("worker_processes", "max_in_flight_samples", "max_batch_items", "max_request_bytes",
                     "max_completion_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1")
        if self.sample_timeout_s <= 0:
            raise ConfigError("sample_timeout_s: must be > 0")
        if self.max_batch_items > self.max_in_flight_samples:
            raise ConfigError("max_batch_items: must be <= max_in_flight_samples, or a full batch "
                              "could never be admitted")
        if self.cache_entries < 0:
            raise ConfigError("cache_entries: must be >= 0")
        for key, names in (("verifiers", self.verifiers), ("plugins", self.plugins), ("external", self.external)):
            for name in names:
                try:
                    validate_name(name)
                except ValueError as exc:
                    raise ConfigError(f"{key}: {exc}") from None
        for name, target in self.plugins.items():
            if ":" not in target:
                raise ConfigError(f"plugins.{name}: expected 'module:Factory', got {target!r}")
        for name, address in self.external.items():
            if not address.rpartition(":")[2].isdigit():
                raise ConfigError(f"external.{name}: expected 'host:port', got {address!r}")
        both = set(self.plugins) & set(self.external)
        if both:
            raise ConfigError(f"external.{sorted(both)[0]}: also listed under plugins")
        try:
            RoutingConfig.from_tasks(self.routing)
        except ValueError as exc:
            raise ConfigError(f"{exc}") from None


@dataclass(frozen=True)
class TlsFiles:
    """PEM files; with `client_ca_file` the server requires client certificates (mTLS)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


@dataclass(frozen=True)
class ServerConfig:
    """The standalone grpc.aio server (`arbiter serve --standalone`)."""

    host: str = "127.0.0.1"
    port: int = 50051
    """0 binds any free port; create_server returns the one it got."""
    token: str | None = None
    """Bearer token every call must carry (``authorization: Bearer <token>``); None disables."""
    tls: TlsFiles | None = None
    metrics_port: int | None = None
    """Serve Prometheus metrics over HTTP on this port (0 = any free); None = not exposed."""
    grace_s: float = 10.0
    """On stop, in-flight calls get this long to finish while new ones are refused."""
    drain_delay_s: float = 0.0
    """On stop, stay up this long answering NOT_SERVING/UNAVAILABLE so load balancers route away first."""
    enable_sandbox_service: bool = True
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("port: must be in 0..65535")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError("metrics_port: must be in 0..65535")
        for name in ("grace_s", "drain_delay_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0")
        if self.token is not None and not self.token:
            raise ConfigError("token: must be non-empty when set")


class FaultPolicy(enum.Enum):
    """What the client does when a verifier faults (TIMEOUT/ERROR verdict or an RPC that failed for good)."""

    RETRY = "retry"
    """Score the sample again (up to `retries` times), then report the fault."""
    MASK = "mask"
    """Treat the verifier as not applicable for that sample: it leaves the sum, the rest still count."""
    FAIL = "fail"
    """Raise VerifierFault: the trainer should fail the step rather than learn from a partial reward."""


@dataclass(frozen=True)
class ClientConfig:
    """The asyncio VerifierClient shared by the trainer, `arbiter score --endpoint` and users."""

    endpoint: str = "127.0.0.1:50051"
    """Default endpoint: a server that serves the routed verifiers (standalone server, a family app
    or the Serve router)."""
    endpoints: dict[str, str] = field(default_factory=dict)
    """Verifier name -> endpoint, for verifiers served elsewhere (e.g. an external verifier)."""
    application: str | None = None
    """Ray Serve application to address (`router` takes any verifier or task), sent as metadata
    `application` on every call; None sends nothing (a standalone server needs none)."""
    token: str | None = None
    tls_ca_file: str | None = None
    """The CA that signed the server's certificate; set, the client speaks TLS."""
    tls_cert_file: str | None = None
    """The client's own certificate and key, for a server that requires mTLS."""
    tls_key_file: str | None = None
    deadline_s: float = 300.0
    """Deadline of every RPC; a batch that overruns it is retried like UNAVAILABLE. Keep it above the
    server's sample_timeout_s plus queueing (a batch of 64 code samples on 2 workers takes minutes), so a
    stuck sample comes back as the server's TIMEOUT verdict rather than failing its whole batch."""
    max_batch: int = 64
    max_wait_ms: float = 5.0
    """A partial batch is sent after waiting this long for more samples."""
    max_concurrency: int = 8
    """RPCs in flight at once, over all endpoints."""
    retries: int = 4
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    fault_policy: dict[str, FaultPolicy] = field(default_factory=dict)
    """Verifier name -> policy; unnamed verifiers get `default_fault_policy`."""
    default_fault_policy: FaultPolicy = FaultPolicy.RETRY

    def validate(self) -> None:
        for name in ("max_batch", "max_concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1")
        for name in ("deadline_s", "backoff_initial_s", "backoff_max_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be > 0")
        if self.max_wait_ms < 0 or self.retries < 0:
            raise ConfigError("max_wait_ms/retries: must be >= 0")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError("tls_cert_file: the client certificate and key go together")
        if self.tls_cert_file is not None and self.tls_ca_file is None:
            raise ConfigError("tls_ca_file: mTLS needs the server's CA as well")
        for name in self.endpoints:
            try:
                validate_name(name)
            except ValueError as exc:
                raise ConfigError(f"endpoints: {exc}") from None

