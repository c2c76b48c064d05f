"""The cluster config: which verifiers run where, how they scale, and how clients reach them.

One YAML file (default ``configs/cluster.yaml``) read strictly: unknown keys,
wrong types and impossible values are errors at start-up, each naming its path
(``families.math.autoscaling.max_replicas``). A family or plug-in section,
with the cluster's routing and token variable added (`app_args`), is the
``args`` of its Serve application builder in ``services.serve_app``, so
``arbiter serve`` and a KubeRay ``serveConfigV2`` validate the same way.

Shape (every key optional; see configs/cluster.yaml for the defaults explained)::

    serve: {grpc_port: 9000, http_port: 8000, http_host: 127.0.0.1, request_timeout_s: 300, metrics_port: 8080}
    health: {port: 9010, host: 127.0.0.1, probe_interval_s: 2.0, probe_timeout_s: 5.0}
    auth: {token_env: ARBITER_TOKEN, allow_unauthenticated: false}
    routing: {math: {math: 1.0, format: 1.0}, code: {code: 1.0}}   # task -> {verifier: weight}
    router: {enabled: true, max_ongoing_requests: 64}
    families:                  # built-in verifier families, one Serve app each
      math: {scoring: {worker_processes: 2}, autoscaling: {min_replicas: 1, max_replicas: 4}}
    plugins:                   # entry points of group arbiter.verifiers, one Serve app each
      my_verifier: {}
    external:                  # servers implementing arbiter.v1.Verifier, by address
      judge: {address: "10.0.0.7:50051", verifiers: [judge]}
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from arbiter.config import ConfigError, from_dict
from rewards.registry import validate_name
from rewards.routing import RoutingConfig
from services.config import ScoringConfig, ServerConfig

# Which built-in verifiers each family deployment is for. Rules are cheap string checks that
# share one deployment; math (sympy) and code (sandboxed processes) each scale on their own.
FAMILY_VERIFIERS: dict[str, tuple[str, ...]] = {
    "rules": ("format", "tag_count", "language", "cosine_length", "overlong", "repetition"),
    "math": ("math",),
    "code": ("code",),
}
ROUTER_APP = "router"
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class AutoscalingConfig:
    """Replica autoscaling for one deployment (Ray Serve's autoscaling_config)."""

    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float = 2.0
    """Requests per replica Serve aims for: about one batch per worker process keeps each busy."""
    upscale_delay_s: float = 3.0
    downscale_delay_s: float = 60.0

    def validate(self) -> None:
        if self.min_replicas < 0:
            raise ConfigError("min_replicas: must be >= 0")
        if self.max_replicas < max(1, self.min_replicas):
            raise ConfigError("max_replicas: must be >= max(1, min_replicas)")
        _positive(self.target_ongoing_requests, "target_ongoing_requests")
        if self.upscale_delay_s < 0 or self.downscale_delay_s < 0:
            raise ConfigError("upscale_delay_s/downscale_delay_s: must be >= 0")


@dataclass(frozen=True)
class RuntimeEnvConfig:
    """Ray's runtime_env for one deployment: how a plug-in's package reaches the replicas."""

    pip: tuple[str, ...] = ()
    """Requirements installed into the replica's environment, e.g. ["arbiter-judge==1.2"]."""
    py_modules: tuple[str, ...] = ()
    working_dir: str | None = None
    env_vars: dict[str, str] = field(default_factory=dict)

    def to_ray(self) -> dict[str, Any]:
        ray_env: dict[str, Any] = {}
        if self.pip:
            ray_env["pip"] = list(self.pip)
        if self.py_modules:
            ray_env["py_modules"] = list(self.py_modules)
        if self.working_dir is not None:
            ray_env["working_dir"] = self.working_dir
        if self.env_vars:
            ray_env["env_vars"] = dict(self.env_vars)
        return ray_env


@dataclass(frozen=True)
class DeploymentConfig:
    """One verifier deployment (a family or a plug-in): the args of its Serve application builder."""

    scoring: ScoringConfig = field(default_factory=lambda: ScoringConfig(worker_processes=1))
    """The replica's servicer: worker processes, timeouts, cache. `scoring.verifiers` empty means
    the family's own verifiers plus those its tasks route to."""
    max_ongoing_requests: int = 8
    """Calls a replica works on at once; a ScoreBatch of 64 counts as one."""
    max_queued_requests: int = 32
    """Calls waiting for a replica beyond this are refused with RESOURCE_EXHAUSTED."""
    num_cpus: float = 0.5
    """Ray CPUs reserved per replica (its worker processes use real cores beyond this)."""
    resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources per replica, e.g. {"verifier": 1} to keep replicas on verifier nodes."""
    graceful_shutdown_timeout_s: float = 20.0
    autoscaling: AutoscalingConfig = field(default_factory=AutoscalingConfig)
    runtime_env: RuntimeEnvConfig = field(default_factory=RuntimeEnvConfig)

    def validate(self) -> None:
        _check_replica_limits(self)

    def serve_options(self) -> dict[str, Any]:
        """Keyword arguments for `Deployment.options`."""
        return _replica_options(self, self.runtime_env.to_ray())


def _check_replica_limits(cfg: DeploymentConfig | RouterConfig) -> None:
    for name in ("max_ongoing_requests", "max_queued_requests"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name}: must be >= 1")
    if cfg.num_cpus < 0:
        raise ConfigError("num_cpus: must be >= 0")
    _positive(cfg.graceful_shutdown_timeout_s, "graceful_shutdown_timeout_s")


def _replica_options(cfg: DeploymentConfig | RouterConfig, runtime_env: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for `Deployment.options`, shared by the verifier apps and the router."""
    return {
        "max_ongoing_requests": cfg.max_ongoing_requests,
        "max_queued_requests": cfg.max_queued_requests,
        "autoscaling_config": dataclasses.asdict(cfg.autoscaling),
        "graceful_shutdown_timeout_s": cfg.graceful_shutdown_timeout_s,
        "ray_actor_options": _actor_options(cfg.num_cpus, cfg.resources, runtime_env),
    }


@dataclass(frozen=True)
class RouterConfig:
    """The front `router` app: takes any verifier or task and forwards to the app that serves it."""

    enabled: bool = True
    max_ongoing_requests: int = 64
    max_queued_requests: int = 256
    num_cpus: float = 0.1
    resources: dict[str, float] = field(default_factory=dict)
    graceful_shutdown_timeout_s: float = 20.0
    autoscaling: AutoscalingConfig = field(default_factory=AutoscalingConfig)

    def validate(self) -> None:
        _check_replica_limits(self)

    def serve_options(self) -> dict[str, Any]:
        return _replica_options(self, {})


@dataclass(frozen=True)
class ExternalConfig:
    """A gRPC server implementing arbiter.v1.Verifier, registered by address."""

    address: str
    verifiers: tuple[str, ...] = ()
    """The verifier names it serves, each checked with Describe at start-up; empty = the entry's name."""
    timeout_s: float = 10.0

    def validate(self) -> None:
        match = _ADDRESS.match(self.address)
        if not match or not 0 < int(match[2]) < 65536:
            raise ConfigError(f"address: expected HOST:PORT, got {self.address!r}")
        for name in self.verifiers:
            _check_name(name, "verifiers")
        _positive(self.timeout_s, "timeout_s")


@dataclass(frozen=True)
class ServeConfig:
    """Cluster-wide Serve proxy options (fixed once Serve has started on a cluster)."""

    grpc_port: int = 9000
    http_port: int = 8000
    """KubeRay's readiness probe hits the HTTP proxy's /-/healthz, so HTTP stays on."""
    http_host: str = "127.0.0.1"
    """Loopback unless named: another host needs auth (services/exposure.py)."""
    request_timeout_s: float = 300.0
    """End-to-end limit the proxy puts on every call (DEADLINE_EXCEEDED past it); clients set their own,
    shorter deadlines, and a batch of code samples may legitimately take minutes."""
    metrics_port: int = 8080
    """Ray's metrics export port on the node `arbiter serve` starts (KubeRay's default, which its
    PodMonitor scrapes); the replicas' metrics are there. A joined cluster's nodes keep their own."""

    def validate(self) -> None:
        for name in ("grpc_port", "http_port", "metrics_port"):
            if not 0 <= getattr(self, name) < 65536:
                raise ConfigError(f"{name}: must be a TCP port (0 = any free port)")
        _positive(self.request_timeout_s, "request_timeout_s")


@dataclass(frozen=True)
class HealthConfig:
    """The grpc.health.v1 endpoint `arbiter serve` runs for Kubernetes probes (services/health.py)."""

    port: int = 9010
    host: str = "127.0.0.1"
    probe_interval_s: float = 2.0
    probe_timeout_s: float = 5.0

    def validate(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError("port: must be a TCP port (0 = any free port)")
        _positive(self.probe_interval_s, "probe_interval_s")
        _positive(self.probe_timeout_s, "probe_timeout_s")


@dataclass(frozen=True)
class AuthConfig:
    """A shared bearer token, read from the environment so it never sits in a config file."""

    token_env: str | None = None
    allow_unauthenticated: bool = False
    """Serve a non-loopback address without a token (a trusted network); refused otherwise."""

    def validate(self) -> None:
        if self.token_env is not None and not _ENV_NAME.match(self.token_env):
            raise ConfigError(f"token_env: not an environment variable name: {self.token_env!r}")


@dataclass(frozen=True)
class StandaloneConfig:
    """`arbiter serve --standalone`: one grpc.aio server (services.server) instead of Ray Serve."""

    host: str = "127.0.0.1"
    metrics_port: int | None = None
    grace_s: float = 10.0
    drain_delay_s: float = 0.0
    """After NOT_SERVING, wait this long for load balancers to notice before refusing calls."""
    scoring: ScoringConfig = field(default_factory=lambda: ScoringConfig(worker_processes=2))

    def server_config(self, cluster: ClusterConfig, token: str | None) -> ServerConfig:
        """The server's config: the port, token, routing and external verifiers come from the cluster config."""
        external = {verifier: cluster.external[name].address for verifier, name in cluster.external_verifiers()}
        scoring = dataclasses.replace(
            self.scoring, routing=cluster.routing, external={**self.scoring.external, **external}
        )
        return ServerConfig(
            host=self.host,
            port=cluster.serve.grpc_port,
            token=token,
            metrics_port=self.metrics_port,
            grace_s=self.grace_s,
            drain_delay_s=self.drain_delay_s,
            scoring=scoring,
        )


@dataclass(frozen=True)
class ClusterConfig:
    """Everything `arbiter serve` deploys; `load` builds it from YAML and validates it."""

    serve: ServeConfig = field(default_factory=ServeConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    routing: dict[str, dict[str, float]] = field(default_factory=dict)
    """task -> {verifier: weight}, the primary first, for every app; empty = rewards.routing.DEFAULT_ROUTING."""
    router: RouterConfig = field(default_factory=RouterConfig)
    families: dict[str, DeploymentConfig] = field(
        default_factory=lambda: {name: DeploymentConfig() for name in FAMILY_VERIFIERS}
    )
    """Omitted = every built-in family with default options; listed = only those."""
    plugins: dict[str, DeploymentConfig] = field(default_factory=dict)
    external: dict[str, ExternalConfig] = field(default_factory=dict)
    standalone: StandaloneConfig = field(default_factory=StandaloneConfig)

    def validate(self) -> None:
        try:
            RoutingConfig.from_tasks(self.routing)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for name, family in self.families.items():
            if name not in FAMILY_VERIFIERS:
                raise ConfigError(f"families.{name}: unknown family; known: {', '.join(FAMILY_VERIFIERS)}")
            if family.scoring.routing:
                raise ConfigError(f"families.{name}.scoring.routing: set routing at the top level")
        for name, plugin in self.plugins.items():
            _check_name(name, "plugins")
            if plugin.scoring.routing:
                raise ConfigError(f"plugins.{name}.scoring.routing: set routing at the top level")
        for name in self.external:
            _check_name(name, "external")
        if self.standalone.scoring.routing:
            raise ConfigError("standalone.scoring.routing: set routing at the top level")
        self.verifier_targets()

    @property
    def routes(self) -> RoutingConfig:
        return RoutingConfig.from_tasks(self.routing)

    def app_names(self) -> list[str]:
        """Every Serve application this config deploys, the router last (it calls the others)."""
        return [*self.families, *self.plugins] + ([ROUTER_APP] if self.router.enabled else [])

    def verifier_targets(self) -> dict[str, str]:
        """verifier name -> the Serve app (or external name) that scores it; duplicates are an error."""
        table: dict[str, str] = {}

        def claim(verifier: str, owner: str, path: str) -> None:
            if verifier in table:
                raise ConfigError(f"{path}: duplicate verifier name {verifier!r} (also served by {table[verifier]!r})")
            table[verifier] = owner

        for family in self.families:
            for verifier in FAMILY_VERIFIERS[family]:
                claim(verifier, family, f"families.{family}")
        for plugin in self.plugins:
            if plugin in FAMILY_VERIFIERS or plugin == ROUTER_APP:
                raise ConfigError(f"plugins.{plugin}: clashes with the application of that name")
            claim(plugin, plugin, f"plugins.{plugin}")
        for verifier, name in self.external_verifiers():
            claim(verifier, f"external:{name}", f"external.{name}")
        return table

    def external_verifiers(self) -> list[tuple[str, str]]:
        """(verifier name, name of the `external` entry serving it), in config order. A list, not a
        mapping, so that a name two entries claim reaches verifier_targets to be reported."""
        return [(verifier, name) for name, ext in self.external.items() for verifier in ext.verifiers or (name,)]


@dataclass(frozen=True)
class AppArgs(DeploymentConfig):
    """The args of a family application builder (a KubeRay serveConfigV2 `args:` mapping)."""

    token_env: str | None = None
    """The replica refuses calls without `authorization: Bearer $<token_env>` (UNAUTHENTICATED)."""

    def validate(self) -> None:
        super().validate()
        AuthConfig(self.token_env).validate()


@dataclass(frozen=True)
class PluginAppArgs(AppArgs):
    """The args of `plugin_app`: one entry-point verifier (group arbiter.verifiers) by name."""

    verifier: str = ""

    def validate(self) -> None:
        _check_name(self.verifier, "verifier")
        super().validate()


@dataclass(frozen=True)
class RouterAppArgs:
    """The args of `router_app`: where each verifier is served."""

    targets: dict[str, str] = field(default_factory=dict)
    """verifier name -> Serve app name, or "external:NAME" for an entry of `external`."""
    external: dict[str, ExternalConfig] = field(default_factory=dict)
    router: RouterConfig = field(default_factory=RouterConfig)
    routing: dict[str, dict[str, float]] = field(default_factory=dict)
    """task -> {verifier: weight}; empty = rewards.routing.DEFAULT_ROUTING."""
    token_env: str | None = None

    @property
    def routes(self) -> RoutingConfig:
        return RoutingConfig.from_tasks(self.routing)

    def validate(self) -> None:
        if not self.targets:
            raise ConfigError("targets: the router needs at least one verifier -> app entry")
        for verifier, target in self.targets.items():
            _check_name(verifier, "targets")
            if target.startswith("external:") and target.removeprefix("external:") not in self.external:
                raise ConfigError(f"targets.{verifier}: {target!r} is not listed under external")


def app_args(config: ClusterConfig, app: str) -> dict[str, Any]:
    """The builder args of one application of `config`, as plain data (what serveConfigV2 holds)."""
    if app == ROUTER_APP:
        return {
            "targets": config.verifier_targets(),
            "external": to_dict(config.external),
            "router": to_dict(config.router),
            "routing": config.routing,
            "token_env": config.auth.token_env,
        }
    section = config.plugins[app] if app in config.plugins else config.families[app]
    # One routing for the whole cluster: every replica composes rewards the same way.
    scoring = dataclasses.replace(section.scoring, routing=config.routing)
    args = to_dict(dataclasses.replace(section, scoring=scoring))
    args["token_env"] = config.auth.token_env
    if app in config.plugins:
        args["verifier"] = app
    return args


def parse(raw: Any, source: str = "cluster config") -> ClusterConfig:
    """Build and validate a ClusterConfig from decoded YAML; errors name `source` and the key path."""
    try:
        return from_dict(ClusterConfig, raw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load(path: str | Path) -> ClusterConfig:
    with open(path) as f:
        return parse(yaml.safe_load(f), source=str(path))


def to_dict(config: Any) -> Any:
    """The plain-data form of a config dataclass (tuples as lists, enums as values): Serve builder args."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, (tuple, list)):
        return [to_dict(v) for v in config]
    return getattr(config, "value", config)


def _actor_options(num_cpus: float, resources: dict[str, float], runtime_env: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": num_cpus}
    if resources:
        options["resources"] = dict(resources)
    if runtime_env:
        options["runtime_env"] = runtime_env
    return options


def _positive(value: float, path: str) -> None:
    if not value > 0:
        raise ConfigError(f"{path}: must be > 0")


def _check_name(name: str, path: str) -> None:
    try:
        validate_name(name)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
