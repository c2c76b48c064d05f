"""Which addresses `arbiter serve` listens on, and the rule that an open one needs a token.

Every listener binds 127.0.0.1 unless the cluster config names another host. A listener on any
other address reaches the network, so it needs `auth.token_env` (calls then carry
``authorization: Bearer <token>``); without one, start-up stops with an error naming the key, unless
the operator says ``auth.allow_unauthenticated: true`` (a trusted network), which is logged.

Ray 2.60's Serve gRPC proxy has no host option (it binds ``[::]``, every interface), so on Ray
Serve the gRPC port always counts as reachable from the network: `arbiter serve` on Ray needs a
token or that explicit opt-out, while `--standalone` binds `standalone.host`, 127.0.0.1 by default.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from arbiter.config import ConfigError
from services.cluster_config import ClusterConfig

log = logging.getLogger(__name__)

SERVE_GRPC_BIND = "::"  # what Ray Serve's gRPC proxy binds, whatever the config says


@dataclass(frozen=True)
class Listener:
    what: str
    key: str
    """The config key that sets the host (or why none does)."""
    host: str


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost resolves to whatever DNS says


def listeners(config: ClusterConfig, standalone: bool) -> list[Listener]:
    """What `arbiter serve` (or `--standalone`) binds for `config`."""
    if standalone:
        found = [Listener("the gRPC server", "standalone.host", config.standalone.host)]
        if config.standalone.metrics_port is not None:
            found.append(Listener("the metrics endpoint", "standalone.host", config.standalone.host))
        return found
    return [
        Listener("Ray Serve's gRPC proxy", "no host option in Ray 2.60", SERVE_GRPC_BIND),
        Listener("Ray Serve's HTTP proxy", "serve.http_host", config.serve.http_host),
        Listener("the grpc.health.v1 endpoint", "health.host", config.health.host),
    ]


def check_exposure(config: ClusterConfig, standalone: bool) -> None:
    """ConfigError when a listener is reachable from the network with no token and no explicit opt-out."""
    exposed = [lsn for lsn in listeners(config, standalone) if not is_loopback(lsn.host)]
    if not exposed or config.auth.token_env is not None:
        return
    where = "; ".join(f"{lsn.what} on {lsn.host} ({lsn.key})" for lsn in exposed)
    if config.auth.allow_unauthenticated:
        log.warning("serving WITHOUT authentication on a non-loopback address (auth.allow_unauthenticated): %s",
                    where)
        return
    raise ConfigError(
        f"auth.token_env: not set, and {where} would be reachable from the network without authentication; "
        "set auth.token_env to the environment variable holding a bearer token, bind 127.0.0.1, or set "
        "auth.allow_unauthenticated: true to serve a trusted network without one")
