"""services.cluster_config and the Serve application builders: strict config, no cluster needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import cluster_config
from services.cluster_config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_default_cluster_yaml_deploys_every_family_and_the_router():
    config = cluster_config.load(REPO / "configs/cluster.yaml")
    assert config.app_names() == ["rules", "math", "code", "router"]
    assert config.verifier_targets()["math"] == "math"
    assert config.verifier_targets()["repetition"] == "rules"


def test_empty_config_means_defaults():
    assert cluster_config.parse(None) == cluster_config.parse({})


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"families": {"math": {"worker_count": 3}}}, "families.math.worker_count"),
        ({"serve": {"grpc_port": "9000"}}, "serve.grpc_port"),
        ({"families": {"math": {"autoscaling": {"min_replicas": 3, "max_replicas": 1}}}},
         "families.math.autoscaling.max_replicas"),
        ({"families": {"physics": {}}}, "families.physics"),
        ({"families": {"math": {"scoring": {"worker_processes": 0}}}}, "families.math.scoring.worker_processes"),
        ({"external": {"judge": {"address": "no-port"}}}, "external.judge.address"),
        ({"plugins": {"math": {}}}, "plugins.math"),
        ({"plugins": {"router": {}}}, "plugins.router"),
        ({"external": {"format": {"address": "127.0.0.1:5000"}}}, "external.format"),
        ({"auth": {"token_env": "not a name"}}, "auth.token_env"),
        ({"families": {"math": {"scoring": {"routing": {"math": {"math": 1.0}}}}}}, "families.math.scoring.routing"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(raw, path):
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        cluster_config.parse(raw, source="test.yaml")


def test_app_args_round_trip_through_the_builders_strict_dataclasses():
    from services.config import from_dict

    config = cluster_config.parse({"plugins": {"judge": {"resources": {"verifier": 1}}}})
    math_args = from_dict(cluster_config.AppArgs, cluster_config.app_args(config, "math"))
    assert math_args == cluster_config.AppArgs(**{**vars(config.families["math"])})
    plugin_args = from_dict(cluster_config.PluginAppArgs, cluster_config.app_args(config, "judge"))
    assert plugin_args.verifier == "judge"
    router_args = from_dict(cluster_config.RouterAppArgs, cluster_config.app_args(config, "router"))
    assert router_args.targets["judge"] == "judge"


def test_deployment_options_carry_autoscaling_queue_limits_resources_and_runtime_env():
    config = cluster_config.parse({"families": {"math": {
        "max_ongoing_requests": 3, "max_queued_requests": 7, "resources": {"verifier": 1},
        "autoscaling": {"min_replicas": 1, "max_replicas": 5},
        "runtime_env": {"env_vars": {"A": "1"}},
    }}})
    options = config.families["math"].serve_options()
    assert options["max_ongoing_requests"] == 3
    assert options["max_queued_requests"] == 7
    assert options["autoscaling_config"]["max_replicas"] == 5
    assert options["ray_actor_options"]["resources"] == {"verifier": 1.0}
    assert options["ray_actor_options"]["runtime_env"] == {"env_vars": {"A": "1"}}


def test_builders_return_applications_without_starting_ray():
    import ray
    from ray import serve

    from services import serve_app

    was_initialized = ray.is_initialized()  # False in a unit-only run; the suite may share a cluster
    for builder in (serve_app.rules_app, serve_app.math_app, serve_app.code_app):
        assert isinstance(builder({}), serve.Application)
    assert isinstance(serve_app.plugin_app({"verifier": "judge"}), serve.Application)
    assert isinstance(serve_app.router_app({"targets": {"math": "math"}}), serve.Application)
    assert ray.is_initialized() == was_initialized


def test_builder_rejects_unknown_args():
    from services import serve_app

    with pytest.raises(ConfigError, match="replicas"):
        serve_app.math_app({"replicas": 3})
    with pytest.raises(ConfigError, match="targets"):
        serve_app.router_app({"targets": {"judge": "external:nowhere"}})


def test_family_app_also_serves_the_secondaries_its_tasks_route_to():
    from rewards.routing import DEFAULT_ROUTING
    from services.serve_app import served_verifiers

    assert served_verifiers(("math",), DEFAULT_ROUTING) == ("format", "math")
    assert served_verifiers(("code",), DEFAULT_ROUTING) == ("code",)


def test_standalone_server_config_takes_port_token_routing_and_externals_from_the_cluster():
    config = cluster_config.parse({
        "serve": {"grpc_port": 7000},
        "external": {"judge": {"address": "10.0.0.7:50051", "verifiers": ["judge", "judge_v2"]}},
    })
    server = config.standalone.server_config(config, token="s3cret")
    assert (server.port, server.token) == (7000, "s3cret")
    assert server.scoring.external == {"judge": "10.0.0.7:50051", "judge_v2": "10.0.0.7:50051"}


def test_serve_config_file_validates_and_builds_through_serves_own_loader():
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve._private.utils import import_attr
    from ray.serve.schema import ServeDeploySchema

    from services.serve_app import serve_config

    config = cluster_config.parse({"plugins": {"judge": {}}, "external": {"ext": {"address": "10.0.0.7:50051"}}})
    document = serve_config(config)
    ServeDeploySchema.model_validate(document)  # what a KubeRay serveConfigV2 must pass
    for app in document["applications"]:
        built = call_user_app_builder_with_args_if_necessary(import_attr(app["import_path"]), app["args"])
        assert built is not None
    assert [a["route_prefix"] for a in document["applications"]] == ["/rules", "/math", "/code", "/judge", "/router"]
