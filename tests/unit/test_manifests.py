"""Offline validation of deploy/: KubeRay manifests, their serveConfigV2, the image recipe.

What the API server would check (the CRD's openAPIV3Schema, vendored in deploy/crds/) plus what
it would not: unknown fields are rejected everywhere a schema lists properties (the CRDs accept
and drop them), CEL rules are refused rather than skipped, built-in kinds and embedded pod
templates go through Kubernetes' own strict schemas (kubernetes-validate, shipped offline), and
serveConfigV2 goes through Ray's ServeDeploySchema with unknown keys rejected (Ray ignores typos),
every import path resolved and every app built with its args, as the Serve controller would.
The `test_rejects_*` tests break a copy of each manifest and show the checks catch it.
No cluster, no Ray runtime, no network.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shlex
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MANIFESTS = sorted((DEPLOY / "kuberay").glob("*.yaml"))
KUBERAY_VERSION = "v1.7.0"
RAY_VERSION = "2.60.0"
# The oldest Kubernetes the manifests promise to work on: user-namespaced pods (hostUsers: false,
# which the sandbox needs) are on by default from 1.33.
KUBERNETES_VERSION = "1.33"
CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayService": "ray.io_rayservices.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
}
# Custom resources each role is placed by (see deploy/kuberay/raycluster.yaml).
ROLE_RESOURCES = {"verifier", "rollout_gpu", "learner"}

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Importing Ray Serve's schemas warns about its own pydantic usage; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ---------------------------------------------------------------------------------------------
# Loading


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_Loader) if doc is not None]


@functools.cache
def _all_documents() -> tuple[tuple[str, int, dict[str, Any]], ...]:
    return tuple((path.name, i, doc) for path in MANIFESTS for i, doc in enumerate(load_documents(path)))


def all_documents() -> list[tuple[str, int, dict[str, Any]]]:
    """(file name, index, a private deep copy of the document) for every manifest document."""
    return [(name, i, copy.deepcopy(doc)) for name, i, doc in _all_documents()]


def find(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [doc for _, _, doc in all_documents() if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''} in deploy/kuberay, found {len(matches)}"
    return matches[0]


# ---------------------------------------------------------------------------------------------
# CRD schemas, made strict


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields forbidden wherever properties are listed.

    The API server prunes unknown fields silently, so `maxReplica: 4` would be accepted and
    ignored; here it is an error. Free-form maps (additionalProperties given, or preserved
    unknown fields) stay free. `nullable` becomes a null type, which JSON Schema understands.
    """
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _cel_rules_are_not_checked_offline(validator, rules, instance, schema):
    # CEL (x-kubernetes-validations) needs an API server; a manifest that sets such a field
    # would pass here and might fail at apply time, so it is refused until checked by hand.
    yield jsonschema.ValidationError(
        "field guarded by CEL rules, which cannot be evaluated offline: "
        + "; ".join(rule.get("rule", "?") for rule in rules)
    )


def _int_format(bits: int) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return not isinstance(value, int) or -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)

    return check


_FORMATS = jsonschema.FormatChecker()
_FORMATS.checks("int32")(_int_format(32))
_FORMATS.checks("int64")(_int_format(64))
_CRDValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"x-kubernetes-validations": _cel_rules_are_not_checked_offline}
)


@functools.cache
def crd(kind: str) -> dict[str, Any]:
    return yaml.load((DEPLOY / "crds" / CRD_FILES[kind]).read_text(), Loader=_Loader)


@functools.cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    (version,) = [v for v in crd(kind)["spec"]["versions"] if v["name"] == "v1"]
    return _CRDValidator(_strict(version["schema"]["openAPIV3Schema"]), format_checker=_FORMATS)


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<root>"


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """Every schema violation of one manifest document, each prefixed by its field path."""
    kind = doc.get("kind")
    if kind in CRD_FILES:
        if doc.get("apiVersion") != "ray.io/v1":
            return [f"apiVersion: expected ray.io/v1, got {doc.get('apiVersion')!r}"]
        errors = [f"{_where(e)}: {e.message}" for e in crd_validator(kind).iter_errors(doc)]
        # The CRD leaves metadata and embedded Kubernetes objects to the API server; check them
        # with Kubernetes' own strict schemas.
        errors += k8s_errors({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata", {})})
        for where, template in pod_templates(doc):
            wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
            errors += [f"{where}: {e}" for e in k8s_errors(wrapped)]
        service = doc.get("spec", {}).get("serveService")
        if service is not None:
            wrapped = {"apiVersion": "v1", "kind": "Service", **service}
            errors += [f"spec.serveService: {e}" for e in k8s_errors(wrapped)]
        return errors
    return k8s_errors(doc)


def k8s_errors(doc: dict[str, Any]) -> list[str]:
    return list(_k8s_errors(json.dumps(doc, sort_keys=True)))


@functools.cache  # kubernetes-validate reads its schema files on every call
def _k8s_errors(doc_json: str) -> tuple[str, ...]:
    doc = json.loads(doc_json)
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return (f"{'.'.join(map(str, exc.path)) or '<root>'}: {exc.message}",)
    except kubernetes_validate.SchemaNotFoundError as exc:
        return (
            f"<root>: no Kubernetes {KUBERNETES_VERSION} schema for {doc.get('apiVersion')}/{doc.get('kind')}: {exc}",
        )
    return ()


# ---------------------------------------------------------------------------------------------
# Walking KubeRay objects


def cluster_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec", {})
    return {"RayCluster": spec, "RayService": spec.get("rayClusterConfig"), "RayJob": spec.get("rayClusterSpec")}.get(
        doc["kind"]
    )


def groups(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "headGroupSpec", spec["headGroupSpec"]
    for group in spec.get("workerGroupSpecs", []):
        yield f"workerGroupSpecs[{group.get('groupName')}]", group


def pod_templates(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = cluster_spec(doc)
    if spec:
        for where, group in groups(spec):
            yield where, group.get("template", {})
    if doc["kind"] == "RayJob" and "submitterPodTemplate" in doc["spec"]:
        yield "spec.submitterPodTemplate", doc["spec"]["submitterPodTemplate"]


def ray_resources(group: dict[str, Any]) -> dict[str, float]:
    """The custom resources a group advertises (rayStartParams.resources, shell-quoted JSON)."""
    raw = group.get("rayStartParams", {}).get("resources")
    if raw is None:
        return {}
    (text,) = shlex.split(raw)  # KubeRay pastes the value into `ray start`'s shell command line
    parsed = json.loads(text)
    assert isinstance(parsed, dict) and all(isinstance(v, (int, float)) for v in parsed.values()), raw
    return parsed


def ray_container(group: dict[str, Any]) -> dict[str, Any]:
    return group["template"]["spec"]["containers"][0]  # KubeRay runs Ray in the first container


def quantity(value: str | int) -> float:
    text = str(value)
    for suffix, scale in (("m", 1e-3),):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _safe_resources(group: dict[str, Any]) -> dict[str, float]:
    try:
        return ray_resources(group)
    except (ValueError, AssertionError):
        return {}  # reported by cluster_errors


SECCOMP_PROFILE = "arbiter/bwrap-seccomp.json"  # relative to the kubelet's seccomp directory


def pod_security_errors(where: str, template: dict[str, Any], *, sandboxed: bool) -> list[str]:
    """Unprivileged pods everywhere; on verifier pods, exactly what the bubblewrap sandbox needs."""
    spec = template["spec"]
    errors = []
    if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
        errors.append(f"{where}: pod securityContext.runAsNonRoot must be true (the sandbox needs a non-root uid)")
    for container in spec.get("containers", []):
        context = container.get("securityContext", {})
        if context.get("privileged") or context.get("capabilities", {}).get("add"):
            errors.append(f"{where}: container {container['name']} must not be privileged or add capabilities")
        if context.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{where}: container {container['name']} must set allowPrivilegeEscalation: false")
    if sandboxed:
        context = ray_container({"template": template}).get("securityContext", {})
        wanted = {
            "seccompProfile": {"type": "Localhost", "localhostProfile": SECCOMP_PROFILE},
            "appArmorProfile": {"type": "Unconfined"},
            "procMount": "Unmasked",
        }
        for key, value in wanted.items():
            if context.get(key) != value:
                errors.append(f"{where}: the sandbox needs securityContext.{key} = {value} on the Ray container")
        if spec.get("hostUsers") is not False:
            errors.append(f"{where}: the sandbox needs hostUsers: false (procMount Unmasked requires it)")
    return errors


def cluster_errors(doc: dict[str, Any]) -> list[str]:
    """KubeRay and Ray facts the schema cannot express, for one RayCluster-bearing document."""
    spec = cluster_spec(doc)
    if spec is None:
        return []
    errors = []
    if spec.get("rayVersion") != RAY_VERSION:
        errors.append(f"rayVersion: expected {RAY_VERSION!r}, got {spec.get('rayVersion')!r}")
    if spec.get("enableInTreeAutoscaling") is not True:
        errors.append("enableInTreeAutoscaling: must be true (verifier and GPU groups scale with demand)")
    for where, group in groups(spec):
        params = group.get("rayStartParams", {})
        container = ray_container(group)
        image = container.get("image", "")
        if not re.search(r":[0-9][\w.-]*$|@sha256:[0-9a-f]{64}$", image):
            errors.append(f"{where}: image {image!r} must carry a version tag or digest")
        limits = container.get("resources", {}).get("limits", {})
        if "num-cpus" in params and quantity(params["num-cpus"]) > quantity(limits.get("cpu", 0)):
            errors.append(f"{where}: rayStartParams num-cpus {params['num-cpus']} exceeds the cpu limit")
        gpus = quantity(limits.get("nvidia.com/gpu", 0))
        if quantity(params.get("num-gpus", 0)) != gpus:
            errors.append(f"{where}: rayStartParams num-gpus must equal the nvidia.com/gpu limit ({gpus:g})")
        errors += pod_security_errors(where, group["template"], sandboxed="verifier" in _safe_resources(group))
        try:
            unknown = set(ray_resources(group)) - ROLE_RESOURCES
        except (ValueError, AssertionError) as exc:
            errors.append(f"{where}: rayStartParams.resources is not a JSON object of numbers: {exc}")
            continue
        if unknown:
            errors.append(f"{where}: custom resources {sorted(unknown)} are none of {sorted(ROLE_RESOURCES)}")
    return errors


# ---------------------------------------------------------------------------------------------
# serveConfigV2


def _model_for(annotation: Any) -> Any:
    """The pydantic model (or list/dict of one) an annotation holds, if any."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _model_for(args[0])
    if origin in (typing.Union, types.UnionType):
        # Ray declares e.g. Union[Dict, AutoscalingConfig] and converts the dict to the model.
        models = [m for m in map(_model_for, args) if m is not None]
        return models[0] if models else None
    if origin in (list, tuple) and args and _model_for(args[0]) is not None:
        return ("list", _model_for(args[0]))
    if origin is dict and len(args) == 2 and _model_for(args[1]) is not None:
        return ("dict", _model_for(args[1]))
    return None


def unknown_serve_keys(model: Any, raw: Any, path: str) -> list[str]:
    """Keys of `raw` that `model` (a pydantic model, recursively) does not declare."""
    if isinstance(model, tuple):
        shape, inner = model
        items = (
            enumerate(raw)
            if shape == "list" and isinstance(raw, list)
            else (raw.items() if shape == "dict" and isinstance(raw, dict) else [])
        )
        return [err for key, value in items for err in unknown_serve_keys(inner, value, f"{path}[{key}]")]
    if not isinstance(raw, dict):
        return []
    fields = {name: f for name, f in model.model_fields.items()}
    fields.update({f.alias: f for f in model.model_fields.values() if f.alias})
    errors = []
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            errors.append(f"{where}: unknown key for {model.__name__} (Ray would ignore it)")
            continue
        inner = _model_for(fields[key].annotation)
        if inner is not None:
            errors += unknown_serve_keys(inner, value, where)
    return errors


def serve_config(doc: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(doc["spec"]["serveConfigV2"])


def serve_config_errors(config: Any) -> list[str]:
    """What the Serve controller would reject or silently misread in a serveConfigV2."""
    from pydantic import ValidationError
    from ray._common.utils import import_attr
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(config)
    except ValidationError as exc:
        return [f"serveConfigV2: {exc}"]
    errors = unknown_serve_keys(ServeDeploySchema, config, "")
    for function in config.get("grpc_options", {}).get("grpc_servicer_functions", []):
        try:
            if not callable(import_attr(function)):
                errors.append(f"grpc_servicer_functions: {function} is not callable")
        except (ImportError, AttributeError, ValueError) as exc:
            errors.append(f"grpc_servicer_functions: {function} does not import: {exc}")
    for app in config.get("applications", []):
        where = f"applications[{app['name']}]"
        if app.get("route_prefix") is None:
            errors.append(f"{where}.route_prefix: required; Serve does not expose an app without one over gRPC")
        try:
            built = build(app)
        except (ImportError, AttributeError) as exc:
            errors.append(f"{where}.import_path: {app['import_path']} does not import: {exc}")
            continue
        except (TypeError, ValueError) as exc:
            errors.append(f"{where}.args: the app builder rejected them: {exc}")
            continue
        names = {d.name for d in built.deployments}
        for override in app.get("deployments", []):
            if override["name"] not in names:
                errors.append(
                    f"{where}.deployments: {override['name']!r} is not a deployment of the app {sorted(names)}"
                )
    return errors


def build(app: dict[str, Any]) -> Any:
    """The app as the Serve controller builds it from import_path and args (no replica started)."""
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve._private.build_app import build_app

    target = import_attr(app["import_path"])
    return build_app(call_user_app_builder_with_args_if_necessary(target, app.get("args", {})), name=app["name"])


def requested_resources(config: dict[str, Any]) -> Iterator[tuple[str, dict[str, float]]]:
    """(app.deployment, what one replica asks of a node): CPUs and custom resources, as the
    builder sets them unless the config's deployment override replaces ray_actor_options."""
    for app in config.get("applications", []):
        overrides = {o["name"]: o for o in app.get("deployments", [])}
        for deployment in build(app).deployments:
            options = overrides.get(deployment.name, {}).get("ray_actor_options") or deployment.ray_actor_options
            wanted = {"CPU": options.get("num_cpus", 1), **options.get("resources", {})}
            yield f"{app['name']}.{deployment.name}", wanted


def advertised_resources(group: dict[str, Any]) -> dict[str, float]:
    """What one pod of a group offers the Ray scheduler."""
    return {"CPU": quantity(group.get("rayStartParams", {}).get("num-cpus", 0)), **ray_resources(group)}


def service_errors(doc: dict[str, Any]) -> list[str]:
    """A RayService must expose both proxies and be able to place every replica."""
    config = serve_config(doc)
    errors = []
    grpc_port = config.get("grpc_options", {}).get("port")
    http_port = config.get("http_options", {}).get("port")
    service_ports = {p.get("name"): p for p in doc["spec"].get("serveService", {}).get("spec", {}).get("ports", [])}
    for name, port in (("grpc", grpc_port), ("serve", http_port)):
        if service_ports.get(name, {}).get("targetPort") != port:
            errors.append(f"spec.serveService: needs a port named {name!r} targeting {port} (the serveConfigV2 port)")
    spec = doc["spec"]["rayClusterConfig"]
    for where, group in groups(spec):
        if where != "headGroupSpec" and not ray_resources(group):
            continue  # a worker group with no role resource never hosts a replica
        ports = {p.get("name"): p.get("containerPort") for p in ray_container(group).get("ports", [])}
        if ports.get("serve") != http_port:
            errors.append(f"{where}: container port 'serve' must be {http_port}; KubeRay's readiness probe uses it")
        if ports.get("grpc") != grpc_port:
            errors.append(f"{where}: container port 'grpc' must be {grpc_port} (the Serve gRPC proxy)")
    advertised = [advertised_resources(group) for _, group in groups(spec)]
    for app, wanted in requested_resources(config):
        if not any(all(have.get(k, 0) >= v for k, v in wanted.items()) for have in advertised):
            errors.append(f"{app}: a replica needs {wanted}, which no group of rayClusterConfig advertises per pod")
    return errors


# ---------------------------------------------------------------------------------------------
# RayJob


def job_errors(doc: dict[str, Any]) -> list[str]:
    """The RayJob must target a cluster defined here and a config that the trainer accepts."""
    selector = doc["spec"].get("clusterSelector", {}).get("ray.io/cluster")
    clusters = {d["metadata"]["name"]: d for _, _, d in all_documents() if d["kind"] == "RayCluster"}
    if selector not in clusters:
        return [f"spec.clusterSelector: no RayCluster named {selector!r} in deploy/kuberay ({sorted(clusters)})"]
    argv = shlex.split(doc["spec"]["entrypoint"])
    if argv[:2] != ["arbiter", "train"] or "--config" not in argv:
        return [f"spec.entrypoint: expected `arbiter train --config FILE ...`, got {argv}"]
    config_path = Path(argv[argv.index("--config") + 1])
    # The driver runs on a node with the entrypoint's resources (on the head when none are asked).
    wanted = json.loads(doc["spec"].get("entrypointResources", "{}"))
    gpus = doc["spec"].get("entrypointNumGpus", 0)
    hosts = [
        (where, group)
        for where, group in groups(clusters[selector]["spec"])
        if (wanted or gpus or where == "headGroupSpec")
        and all(ray_resources(group).get(k, 0) >= v for k, v in wanted.items())
        and quantity(group.get("rayStartParams", {}).get("num-gpus", 0)) >= gpus
    ]
    if not hosts:
        return [f"spec.entrypointResources: no group of {selector} offers {wanted} and the entrypoint's GPUs"]
    errors = []
    for where, group in hosts:
        pod = group["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0].get("volumeMounts", [])}
        sources = {v["name"]: v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v}
        mounted = [
            (sources[name], config_path.relative_to(path))
            for name, path in mounts.items()
            if name in sources and config_path.is_relative_to(path)
        ]
        if not mounted:
            errors.append(
                f"spec.entrypoint: {config_path} is not on a ConfigMap volume of {where}, where the driver runs"
            )
    if errors:
        return errors
    configmap_name, key = mounted[0]
    configmaps = {d["metadata"]["name"]: d for _, _, d in all_documents() if d["kind"] == "ConfigMap"}
    text = configmaps.get(configmap_name, {}).get("data", {}).get(str(key))
    if text is None:
        return [f"spec.entrypoint: ConfigMap {configmap_name!r} has no key {str(key)!r}"]
    return train_config_errors(text)


def train_config_errors(text: str) -> list[str]:
    from trainer.config import ConfigError, TrainConfig, from_dict

    try:
        from_dict(TrainConfig, yaml.safe_load(text))
    except ConfigError as exc:
        return [f"train config: {exc}"]
    return []


# ---------------------------------------------------------------------------------------------
# All checks


def manifest_errors(doc: dict[str, Any]) -> list[str]:
    errors = schema_errors(doc)
    if errors:
        return errors  # later checks assume the shape is right
    errors += cluster_errors(doc)
    if doc["kind"] == "RayService":
        # Placement and ports are read from the built apps: only once the config itself is sound.
        errors += serve_config_errors(serve_config(doc)) or service_errors(doc)
    if doc["kind"] == "RayJob":
        errors += job_errors(doc)
    if doc["kind"] in CRD_FILES and doc["metadata"].get("labels", {}).get("arbiter/kuberay-version") != KUBERAY_VERSION:
        errors.append(f"metadata.labels: arbiter/kuberay-version must be {KUBERAY_VERSION} (the vendored CRDs' tag)")
    return errors


# ---------------------------------------------------------------------------------------------
# The manifests as shipped


@functools.cache
def shipped_errors(kind: str) -> tuple[str, ...]:
    return tuple(manifest_errors(find(kind)))


@pytest.mark.parametrize("name,index", [(n, i) for n, i, _ in _all_documents()])
def test_manifest_is_valid(name: str, index: int) -> None:
    doc = next(d for n, i, d in all_documents() if (n, i) == (name, index))
    assert manifest_errors(doc) == []


def test_manifests_define_cluster_service_and_job() -> None:
    kinds = sorted(doc["kind"] for _, _, doc in all_documents())
    for kind in ("RayCluster", "RayService", "RayJob"):
        assert kind in kinds


def test_each_role_resource_is_advertised_by_a_group_of_the_training_cluster() -> None:
    advertised = {}
    for where, group in groups(find("RayCluster")["spec"]):
        for resource in ray_resources(group):
            advertised[resource] = where
    assert set(advertised) == ROLE_RESOURCES
    gpu_groups = {w for w, g in groups(find("RayCluster")["spec"]) if "num-gpus" in g.get("rayStartParams", {})}
    assert advertised["rollout_gpu"] in gpu_groups and advertised["learner"] in gpu_groups
    assert advertised["verifier"] not in gpu_groups


def test_every_verifier_replica_is_placed_on_verifier_nodes() -> None:
    config = serve_config(find("RayService"))
    placed = {name for name, wanted in requested_resources(config) if wanted.get("verifier", 0) > 0}
    expected = {
        f"{app['name']}.{'Router' if app['name'] == 'router' else 'Verifier'}" for app in config["applications"]
    }
    assert placed == expected


def test_router_forwards_every_verifier_to_the_app_of_its_family() -> None:
    from services.cluster_config import FAMILY_VERIFIERS

    apps = {app["name"]: app for app in serve_config(find("RayService"))["applications"]}
    expected = {
        verifier: family for family in FAMILY_VERIFIERS if family in apps for verifier in FAMILY_VERIFIERS[family]
    }
    assert apps["router"]["args"]["targets"] == expected


def test_serve_config_exposes_the_verifier_grpc_service() -> None:
    config = serve_config(find("RayService"))
    assert config["grpc_options"]["grpc_servicer_functions"] == [
        "arbiter.v1.verifier_pb2_grpc.add_VerifierServicer_to_server",
        "arbiter.v1.sandbox_pb2_grpc.add_SandboxServicer_to_server",
    ]
    assert {app["import_path"] for app in config["applications"]} >= {
        "services.serve_app:rules_app",
        "services.serve_app:math_app",
        "services.serve_app:code_app",
        "services.serve_app:router_app",
    }


def test_vendored_crds_are_kuberay_v1_7_0() -> None:
    readme = (DEPLOY / "crds" / "README.md").read_text()
    assert f"tag `{KUBERAY_VERSION}`" in readme
    for kind in CRD_FILES:
        assert crd(kind)["kind"] == "CustomResourceDefinition" and crd(kind)["spec"]["names"]["kind"] == kind


def test_validation_needs_no_ray_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    def no_ray(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("manifest validation tried to start or join a Ray cluster")

    monkeypatch.setattr(ray, "init", no_ray)
    for _, _, doc in all_documents():
        manifest_errors(doc)


# ---------------------------------------------------------------------------------------------
# Broken copies are rejected


def _get(doc: Any, path: str) -> Any:
    for key in path.split(".") if path else []:
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    return doc


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    parent, _, leaf = path.rpartition(".")
    node = _get(doc, parent)
    node[int(leaf) if isinstance(node, list) else leaf] = value


def _rename(doc: dict[str, Any], path: str, new: str) -> None:
    parent, _, leaf = path.rpartition(".")
    node = _get(doc, parent)
    node[new] = node.pop(leaf)


def _drop_port(doc: dict[str, Any], path: str, name: str) -> None:
    _set(doc, path, [port for port in _get(doc, path) if port["name"] != name])


def _edit_serve(doc: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> None:
    config = serve_config(doc)
    edit(config)
    doc["spec"]["serveConfigV2"] = yaml.safe_dump(config)


def _edit_train(doc: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> None:
    config = yaml.safe_load(doc["data"]["train.yaml"])
    edit(config)
    doc["data"]["train.yaml"] = yaml.safe_dump(config)


_APP0 = "applications"
_SVC_HEAD = "spec.rayClusterConfig.headGroupSpec.template.spec.containers.0"
_NO_SERVICER = "arbiter.v1.verifier_pb2_grpc.add_NoServicer_to_server"
BROKEN: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "misspelled_top_level_field": (
        "RayCluster",
        lambda d: _rename(d, "spec.enableInTreeAutoscaling", "enableInTreeAutoscalling"),
        "enableInTreeAutoscalling",
    ),
    "misspelled_group_field": (
        "RayCluster",
        lambda d: _rename(d, "spec.workerGroupSpecs.0.maxReplicas", "maxReplica"),
        "maxReplica",
    ),
    "misspelled_container_field": (
        "RayService",
        lambda d: _rename(d, f"{_SVC_HEAD}.imagePullPolicy", "imagePulPolicy"),
        "imagePulPolicy",
    ),
    "wrong_type_replicas": (
        "RayCluster",
        lambda d: _set(d, "spec.workerGroupSpecs.0.maxReplicas", "16"),
        "maxReplicas",
    ),
    "int32_overflow": ("RayCluster", lambda d: _set(d, "spec.workerGroupSpecs.0.maxReplicas", 2**31), "int32"),
    "non_string_ray_start_param": (
        "RayCluster",
        lambda d: _set(d, "spec.headGroupSpec.rayStartParams.num-cpus", 0),
        "num-cpus",
    ),
    "misspelled_metadata_field": ("RayJob", lambda d: _set(d, "metadata.lables", {"a": "b"}), "lables"),
    "cel_guarded_field": ("RayJob", lambda d: _set(d, "spec.managedBy", "ray.io/kuberay-operator"), "CEL"),
    "wrong_api_version": ("RayService", lambda d: _set(d, "apiVersion", "ray.io/v1alpha1"), "apiVersion"),
    "unpinned_image": (
        "RayCluster",
        lambda d: _set(d, "spec.workerGroupSpecs.0.template.spec.containers.0.image", "arbiter:latest"),
        "version tag",
    ),
    "unknown_role_resource": (
        "RayCluster",
        lambda d: _set(d, "spec.workerGroupSpecs.0.rayStartParams.resources", '"{\\"verifer\\": 4}"'),
        "verifer",
    ),
    "gpu_count_mismatch": (
        "RayCluster",
        lambda d: _set(d, "spec.workerGroupSpecs.1.rayStartParams.num-gpus", "2"),
        "num-gpus",
    ),
    "misspelled_service_port_field": (
        "RayService",
        lambda d: _rename(d, "spec.serveService.spec.ports.0.targetPort", "targetPorts"),
        "targetPorts",
    ),
    "grpc_port_not_exposed": ("RayService", lambda d: _drop_port(d, "spec.serveService.spec.ports", "grpc"), "'grpc'"),
    "http_proxy_port_removed": (
        "RayService",
        lambda d: _drop_port(d, f"{_SVC_HEAD}.ports", "serve"),
        "readiness probe",
    ),
    "serve_config_misspelled_key": (
        "RayService",
        lambda d: _edit_serve(
            d, lambda c: _rename(c, "grpc_options.grpc_servicer_functions", "grpc_servicer_function")
        ),
        "grpc_servicer_function",
    ),
    "serve_config_misspelled_deployment_option": (
        "RayService",
        lambda d: _edit_serve(d, lambda c: c[_APP0][0].update(deployments=[{"name": "Verifier", "num_replica": 2}])),
        "num_replica",
    ),
    "serve_config_wrong_type": (
        "RayService",
        lambda d: _edit_serve(d, lambda c: c["grpc_options"].update(port="nine-thousand")),
        "port",
    ),
    "serve_config_missing_attribute": (
        "RayService",
        lambda d: _edit_serve(d, lambda c: c[_APP0][0].update(import_path="services.serve_app:no_such_app")),
        "no_such_app",
    ),
    "serve_config_missing_module": (
        "RayService",
        lambda d: _edit_serve(d, lambda c: c[_APP0][0].update(import_path="services.no_such_module:app")),
        "no_such_module",
    ),
    "serve_config_missing_servicer": (
        "RayService",
        lambda d: _edit_serve(d, lambda c: c["grpc_options"].update(grpc_servicer_functions=[_NO_SERVICER])),
        "add_NoServicer_to_server",
    ),
    "serve_config_unknown_deployment": (
        "RayService",
        lambda d: _edit_serve(d, lambda c: c[_APP0][0].update(deployments=[{"name": "NoSuchDeployment"}])),
        "NoSuchDeployment",
    ),
    "serve_config_bad_builder_args": (
        "RayService",
        lambda d: _edit_serve(d, lambda c: c[_APP0][0]["args"]["scoring"].update(worker_procesess=2)),
        "worker_procesess",
    ),
    "serve_config_without_route_prefix": (
        "RayService",
        lambda d: _edit_serve(d, lambda c: c[_APP0][0].update(route_prefix=None)),
        "route_prefix",
    ),
    "serve_config_unplaceable_replica": (
        "RayService",
        lambda d: _edit_serve(d, lambda c: _set(c, "applications.0.args.resources.verifier", 64)),
        "no group",
    ),
    "privileged_container": (
        "RayCluster",
        lambda d: _set(d, "spec.workerGroupSpecs.1.template.spec.containers.0.securityContext.privileged", True),
        "privileged",
    ),
    "sandbox_without_user_namespace": (
        "RayService",
        lambda d: _set(d, "spec.rayClusterConfig.workerGroupSpecs.0.template.spec.hostUsers", True),
        "hostUsers",
    ),
    "sandbox_under_runtime_default_seccomp": (
        "RayCluster",
        lambda d: _set(
            d,
            "spec.workerGroupSpecs.0.template.spec.containers.0.securityContext.seccompProfile",
            {"type": "RuntimeDefault"},
        ),
        "seccompProfile",
    ),
    "job_driver_unplaceable": ("RayJob", lambda d: _set(d, "spec.entrypointResources", '{"lerner": 1}'), "lerner"),
    "job_unknown_cluster": ("RayJob", lambda d: _set(d, "spec.clusterSelector", {"ray.io/cluster": "nope"}), "nope"),
    "job_config_not_mounted": (
        "RayJob",
        lambda d: _set(d, "spec.entrypoint", "arbiter train --config /nowhere/train.yaml --output /runs/x"),
        "/nowhere/train.yaml",
    ),
    "configmap_misspelled_field": ("ConfigMap", lambda d: _rename(d, "data", "dat"), "dat"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_rejects_broken_manifest(case: str) -> None:
    kind, breaks, expected = BROKEN[case]
    assert shipped_errors(kind) == (), "the shipped manifest must be valid for this test to mean anything"
    doc = find(kind)
    breaks(doc)
    errors = manifest_errors(doc)
    assert errors, f"{case}: the broken copy was accepted"
    assert any(expected in error for error in errors), errors


def test_rejects_train_config_typo_in_configmap() -> None:
    configmap = find("ConfigMap", "arbiter-train-config")
    _edit_train(configmap, lambda c: c["grpo"].update(group_sise=8))
    errors = train_config_errors(configmap["data"]["train.yaml"])
    assert errors and "group_sise" in errors[0]


def test_ray_alone_accepts_a_misspelled_serve_key_that_the_strict_walk_rejects() -> None:
    from ray.serve.schema import ServeDeploySchema

    config = serve_config(find("RayService"))
    config["applications"][0]["deployments"] = [{"name": "x", "autoscaling_config": {"max_replica": 4}}]
    ServeDeploySchema.model_validate(config)  # Ray: fine, and the typo would be dropped
    (error,) = unknown_serve_keys(ServeDeploySchema, config, "")
    assert error.startswith("applications[0].deployments[0].autoscaling_config.max_replica: unknown key")


# ---------------------------------------------------------------------------------------------
# The verifier pods' seccomp profile

# What bubblewrap and the sandbox's in-jail launcher call to build namespaces and mounts: denied
# to untrusted programs (sandbox.seccomp_policy), necessarily allowed to the pod.
BUBBLEWRAP_NEEDS = {
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsconfig", "fsmount",
    "fspick", "move_mount", "open_tree", "mount_setattr",
}  # fmt: skip
# Denied to untrusted programs for tidiness (IPC objects outliving a run), harmless for Ray and
# its libraries, which may use them.
POD_NEEDS = {
    "personality", "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop",
    "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr",
}  # fmt: skip


def seccomp_profile() -> dict[str, Any]:
    return json.loads((DEPLOY / "sandbox" / Path(SECCOMP_PROFILE).name).read_text())


def test_pod_seccomp_profile_denies_the_kernel_attack_surface_the_sandbox_denies() -> None:
    from sandbox.seccomp_policy import DENIED_SYSCALLS

    profile = seccomp_profile()
    (rule,) = profile["syscalls"]
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW" and rule["action"] == "SCMP_ACT_ERRNO"
    assert set(rule["names"]) == set(DENIED_SYSCALLS) - BUBBLEWRAP_NEEDS - POD_NEEDS
    assert {"kexec_load", "init_module", "bpf", "perf_event_open", "io_uring_setup", "keyctl"} <= set(rule["names"])


def test_pod_seccomp_profile_names_only_real_syscalls() -> None:
    import pyseccomp

    for name in seccomp_profile()["syscalls"][0]["names"]:
        assert pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) >= 0, name


# ---------------------------------------------------------------------------------------------
# The image recipe


def test_dockerfile_pins_base_image_and_drops_root() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    froms = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert froms and all(re.search(r":\d+\.\d+\.\d+[\w.-]*$|@sha256:[0-9a-f]{64}$", image) for image in froms), froms
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_installs_the_sandbox_needs_and_pinned_ray() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for needed in ("bubblewrap", "g++", f"ray[serve]=={RAY_VERSION}", "--constraint", "protos/"):
        assert needed in text, needed


def test_dockerfile_bakes_in_no_secrets() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert not re.search(r"^\s*(ENV|ARG)\s+\S*(TOKEN|SECRET|PASSWORD|API_KEY|CREDENTIAL)", text, re.I | re.M)
    assert not re.search(r"^\s*COPY\s+\.\s", text, re.M), "copying the whole tree could carry secrets into the image"


def _pins(path: Path) -> dict[str, str]:
    pinned = dict(line.split("==", 1) for line in path.read_text().splitlines() if "==" in line)
    return {name.lower().replace("_", "-"): version for name, version in pinned.items()}


def test_constraints_satisfy_every_pyproject_requirement() -> None:
    """constraints.txt pins every requirement inside its range; the CUDA vLLM extra, which the GPU image
    alone installs, is pinned by constraints-gpu.txt instead."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    cpu, gpu = _pins(DEPLOY / "constraints.txt"), _pins(DEPLOY / "constraints-gpu.txt")
    checks = [(r, cpu) for r in project["dependencies"]]
    checks += [(r, gpu if extra == "vllm" else cpu) for extra, reqs in extras.items() for r in reqs]
    for raw, pinned in checks:
        requirement = Requirement(raw)
        name = requirement.name.lower().replace("_", "-")
        if name == project["name"]:
            continue  # an extra that includes another extra
        assert name in pinned, f"{requirement} is not pinned"
        assert requirement.specifier.contains(pinned[name], prereleases=True), f"{requirement} vs {pinned[name]}"


def test_every_verifier_app_requires_the_token_every_ray_container_gets_from_a_secret() -> None:
    doc = find("RayService")
    (token_env,) = {app["args"].get("token_env") for app in serve_config(doc)["applications"]}
    assert token_env is not None
    for where, group in groups(doc["spec"]["rayClusterConfig"]):
        variables = {env["name"]: env for env in ray_container(group).get("env", [])}
        assert "secretKeyRef" in variables[token_env].get("valueFrom", {}), where


def test_every_ray_pod_of_the_verifier_service_exposes_its_metrics_port() -> None:
    from services.cluster_config import ServeConfig

    for where, group in groups(find("RayService")["spec"]["rayClusterConfig"]):
        port = int(group["rayStartParams"]["metrics-export-port"])
        ports = {p.get("name"): p.get("containerPort") for p in ray_container(group).get("ports", [])}
        assert ports.get("metrics") == port == ServeConfig().metrics_port, where
