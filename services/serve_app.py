"""Ray Serve hosting of arbiter.v1.Verifier: one application per verifier family, plug-ins, a router.

Applications (import paths for `serve run` / a KubeRay serveConfigV2, each a
builder taking an args mapping checked by a strict dataclass):

- ``services.serve_app:rules_app`` / ``math_app`` / ``code_app``: one family
  each (args: ``services.cluster_config.AppArgs``);
- ``services.serve_app:plugin_app``: one entry-point verifier of group
  ``arbiter.verifiers`` (args: ``PluginAppArgs``, e.g. ``{verifier: NAME}``);
- ``services.serve_app:router_app``: takes any verifier or task and forwards it
  to the application that serves it, or to an external server registered by
  address (args: ``RouterAppArgs``).

Deployment names (stable; a serveConfigV2 `deployments:` override uses them):
``Verifier`` in every family and plug-in app, ``Router`` in the router app.
Importing this module or calling a builder starts nothing (no ray.init, no serve.start).

All are reached through Serve's gRPC proxy, started with
``grpc_servicer_functions=SERVICER_FUNCTIONS`` (arbiter.v1.Verifier and
arbiter.v1.Sandbox). With several applications deployed a client must send the
metadata ``application: NAME``. Sandbox calls run in the worker processes of the
app serving `code` (the router forwards them there), through the same core
as the standalone server's.

A replica (services.replica) adapts the core (services.core): reward code runs
in its worker processes, never on the replica's event loop, and a ScoreBatch of
64 is spread over all of them. The router is services.router. A task-routed
sample is scored where its primary verifier lives, so a family replica also
serves the cheap secondary verifiers its tasks route to (the math app scores
`format` for the `math` task).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ray import serve

from rewards.routing import RoutingConfig
from services.cluster_config import (
    FAMILY_VERIFIERS,
    ROUTER_APP,
    AppArgs,
    ClusterConfig,
    PluginAppArgs,
    RouterAppArgs,
    app_args,
)
from services.config import from_dict
from services.replica import VERIFIER_DEPLOYMENT, VerifierReplica
from services.router import ROUTER_DEPLOYMENT, Router

SERVICER_FUNCTION = "arbiter.v1.verifier_pb2_grpc.add_VerifierServicer_to_server"
SANDBOX_SERVICER_FUNCTION = "arbiter.v1.sandbox_pb2_grpc.add_SandboxServicer_to_server"
SERVICER_FUNCTIONS = [SERVICER_FUNCTION, SANDBOX_SERVICER_FUNCTION]  # the whole arbiter.v1 contract
__all__ = ["ROUTER_DEPLOYMENT", "SERVICER_FUNCTION", "SERVICER_FUNCTIONS", "VERIFIER_DEPLOYMENT", "build_app",
           "deploy", "serve_config"]


def served_verifiers(own: tuple[str, ...], routing: RoutingConfig) -> tuple[str, ...]:
    """`own` plus every verifier that a task whose primary verifier is in `own` routes to."""
    served = set(own)
    for route in routing.tasks.values():
        if route[0].verifier in own:  # the primary
            served.update(wv.verifier for wv in route)
    return tuple(sorted(served))


# --- application builders ----------------------------------------------------------------------


def _parse(cls: type, args: Any) -> Any:
    if dataclasses.is_dataclass(args):
        return args
    return from_dict(cls, dict(args or {}))


def _verifier_app(args: AppArgs, own: tuple[str, ...]) -> serve.Application:
    scoring = args.scoring
    if not scoring.verifiers:
        scoring = dataclasses.replace(scoring, verifiers=served_verifiers(own, scoring.routes))
    return VerifierReplica.options(**args.serve_options()).bind(scoring, args.token_env)


def rules_app(args: dict[str, Any]) -> serve.Application:
    """format, tag_count, language, cosine_length, overlong, repetition: cheap rule checks."""
    return _verifier_app(_parse(AppArgs, args), FAMILY_VERIFIERS["rules"])


def math_app(args: dict[str, Any]) -> serve.Application:
    return _verifier_app(_parse(AppArgs, args), FAMILY_VERIFIERS["math"])


def code_app(args: dict[str, Any]) -> serve.Application:
    return _verifier_app(_parse(AppArgs, args), FAMILY_VERIFIERS["code"])


def plugin_app(args: dict[str, Any]) -> serve.Application:
    """One verifier from the entry-point group arbiter.verifiers, deployed on its own."""
    parsed: PluginAppArgs = _parse(PluginAppArgs, args)
    return _verifier_app(parsed, (parsed.verifier,))


def router_app(args: dict[str, Any]) -> serve.Application:
    parsed: RouterAppArgs = _parse(RouterAppArgs, args)
    return Router.options(**parsed.router.serve_options()).bind(parsed)



def build_app(config: ClusterConfig, app: str) -> serve.Application:
    """The Serve application `app` of a cluster config, built as a Serve config file builds it."""
    builder = globals()[import_path(config, app).partition(":")[2]]  # the one serve_config names
    return builder(app_args(config, app))


def deploy(config: ClusterConfig) -> list[str]:
    """Deploy every application of `config` on the running Serve instance, all at once; returns their names.

    Blocks until every app is RUNNING (replicas constructed, worker pools warm). Each app
    needs a route prefix: Serve does not expose an app without one over gRPC.
    """
    names = config.app_names()
    serve.run_many([serve.RunTarget(build_app(config, name), name=name, route_prefix=f"/{name}") for name in names])
    return names


def import_path(config: ClusterConfig, app: str) -> str:
    """The builder of `app`, as a Serve config file names it."""
    if app == ROUTER_APP:
        return f"{__name__}:router_app"
    if app in config.plugins:
        return f"{__name__}:plugin_app"
    return f"{__name__}:{app}_app"


def serve_config(config: ClusterConfig) -> dict[str, Any]:
    """The Serve config file (what a KubeRay RayService's serveConfigV2 holds) that deploys what
    `arbiter serve` deploys for `config`."""
    return {
        "http_options": {"host": config.serve.http_host, "port": config.serve.http_port},
        "grpc_options": {
            "port": config.serve.grpc_port,
            "grpc_servicer_functions": SERVICER_FUNCTIONS,
            "request_timeout_s": config.serve.request_timeout_s,
        },
        "applications": [
            {
                "name": app,
                "route_prefix": f"/{app}",
                "import_path": import_path(config, app),
                "args": app_args(config, app),
            }
            for app in config.app_names()
        ],
    }
