"""The core (rewards, sandbox, the adapters, `arbiter score` in-process) never imports the layers above it.

Checked in a fresh interpreter, where sys.modules shows everything a real run imported: the
extras are installed in this venv, so an import that slipped in would succeed silently.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from arbiter.extras import missing_extra_message, missing_for, requirements_of

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "math_samples.jsonl"
# Top-level modules of the services and train extras.
HEAVY = ("torch", "ray", "grpc", "grpc_health", "grpc_reflection", "google.protobuf", "transformers", "tokenizers",
         "matplotlib", "prometheus_client", "docker")

PROBE = """
import importlib, json, pkgutil, sys
import rewards, sandbox
for package in (rewards, sandbox):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.startswith(("sandbox._zygote", "sandbox.grading.harness.")):  # process entry scripts
            importlib.import_module(info.name)
from rewards.adapters import compute_score, trl_reward_func
trl = trl_reward_func("math")(prompts=["p"], completions=["<answer>4</answer>"], answer=[4])
verl = compute_score("math", "<think>x</think><answer>4</answer>", "4")
from arbiter.cli import main
status = main(["score", "--input", sys.argv[1], "--output", sys.argv[2]])
heavy = [m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in json.loads(sys.argv[3]))]
print(json.dumps({"trl": trl, "verl": verl["score"], "status": status, "heavy": sorted(heavy)}))
"""


def test_scoring_in_process_imports_no_torch_ray_or_grpc(tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(EXAMPLES), str(out), json.dumps(HEAVY)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, check=True)
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["heavy"] == []
    assert report["trl"] == [1.0] and report["verl"] == 2.0 and report["status"] == 0
    assert len(out.read_text().splitlines()) == len(EXAMPLES.read_text().splitlines())


def test_each_extra_brings_its_layer_and_the_layers_below() -> None:
    requires = metadata.requires("arbiter") or []
    core = requirements_of("core", requires)  # no such extra: nothing
    services = requirements_of("services", requires)
    train = requirements_of("train", requires)
    assert core == []
    assert {"ray", "grpcio", "protobuf", "docker"} <= set(services) and "torch" not in services
    assert set(services) < set(train) and {"torch", "transformers"} <= set(train)
    assert set(requirements_of("all", requires)) == set(train)
    assert requirements_of("docker", requires) == ["docker"]


def test_an_installed_extra_needs_no_message() -> None:
    assert missing_for("all") == []
    assert missing_extra_message("arbiter train", "train") is None


def test_a_missing_extra_is_named_with_its_install_line() -> None:
    requires = ['pyyaml>=6; extra == "gpu"', 'no-such-distribution-xyz>=1; python_version >= "3" and extra == "gpu"',
                'arbiter[base]; extra == "gpu"', 'another-missing-xyz; extra == "base"', 'ignored-xyz; extra == "dev"']
    assert requirements_of("gpu", requires) == ["pyyaml", "no-such-distribution-xyz", "another-missing-xyz"]
    assert missing_for("gpu", requires) == ["no-such-distribution-xyz", "another-missing-xyz"]
    assert missing_extra_message("arbiter go", "gpu", requires) == (
        "arbiter go needs the 'gpu' extra (not installed: no-such-distribution-xyz, another-missing-xyz): "
        "pip install 'arbiter[gpu]'")
