"""`pip install arbiter` (the core, no extra) in fresh venvs: alone, beside verl 0.9.1 and beside TRL 1.16.0.

Each venv gets a wheel of this checkout and, for the peers, the framework itself; `pip check` must
be clean, and the scripts in tests/peers/ score through the framework's own code with the
installed arbiter (the repository is never on sys.path). torch is named exactly (torch==2.13.0, the
local CPU wheel): verl and TRL reach torch through their own dependencies, and left to itself pip
would download a CUDA build. Slow: a real resolve and install per venv, minutes from pip's cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "tests" / "peers"
EXAMPLES = ROOT / "examples" / "math_samples.jsonl"
TORCH = "torch==2.13.0"
HEAVY = {"torch", "ray", "grpcio", "protobuf", "transformers", "docker"}


def run(*cmd: str | Path, cwd: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        command = " ".join(map(str, cmd))
        pytest.fail(f"{command} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def arbiter_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout, built from a copy: the working tree's build/ may hold stale files."""
    work = tmp_path_factory.mktemp("arbiter-wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "out", "runs"))
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", source, "-w", work / "dist", cwd=work)
    (wheel,) = (work / "dist").glob("arbiter-*.whl")
    return wheel


class Venv:
    """A fresh venv into which pip installs `requirements` as a user would (--no-compile only saves time).

    The install runs in the background from construction on, so that two venvs resolve and unpack
    on both cores at once; `ready()` waits for it.
    """

    def __init__(self, path: Path, *requirements: str | Path) -> None:
        self.path, self.requirements = path, requirements
        run(sys.executable, "-m", "venv", path, cwd=path.parent)
        self.log = path / "pip-install.log"
        self.started = time.perf_counter()
        with self.log.open("w") as log:
            self.install = subprocess.Popen(
                [str(self.python), "-m", "pip", "install", "-q", "--no-compile", *map(str, requirements)],
                cwd=path.parent, stdout=log, stderr=subprocess.STDOUT)
        self.install_s: float | None = None

    def ready(self) -> Venv:
        if self.install_s is None:
            status = self.install.wait(timeout=1200)
            self.install_s = time.perf_counter() - self.started
            if status != 0:
                pytest.fail(f"pip install {' '.join(map(str, self.requirements))} exited {status}:\n"
                            f"{self.log.read_text()[-4000:]}")
            print(f"{self.path.name}: pip install {' '.join(map(str, self.requirements))}: {self.install_s:.0f} s")
        return self

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def distributions(self) -> dict[str, str]:
        listed = json.loads(run(self.python, "-m", "pip", "list", "--format", "json", cwd=self.path).stdout)
        return {d["name"].lower().replace("_", "-"): d["version"] for d in listed}

    def assert_consistent(self) -> None:
        run(self.python, "-m", "pip", "check", cwd=self.path)
        installed = self.distributions()
        assert installed["arbiter"] == "0.1.0"
        assert not [name for name in installed if name.startswith("nvidia-")], "a CUDA torch was pulled in"
        if "torch" in installed:
            assert installed["torch"].split("+")[0] == "2.13.0"

    def arbiter(self, *args: str, cwd: Path) -> subprocess.CompletedProcess:
        return run(self.path / "bin" / "arbiter", *args, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def peer_venvs(arbiter_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Venv]]:
    """The core beside each framework, both installs started at once."""
    work = tmp_path_factory.mktemp("peers")
    venvs = {"verl": Venv(work / "verl", TORCH, arbiter_wheel, "verl==0.9.1"),
             "trl": Venv(work / "trl", TORCH, arbiter_wheel, "trl==1.16.0")}
    yield venvs
    for venv in venvs.values():  # an install no test waited for (a deselected test) is stopped
        if venv.install.poll() is None:
            venv.install.kill()
            venv.install.wait()


def assert_names_extra(proc: subprocess.CompletedProcess, extra: str) -> None:
    assert proc.returncode == 3, proc.stderr
    assert f"needs the '{extra}' extra" in proc.stderr and f"pip install 'arbiter[{extra}]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_core_install_has_no_torch_ray_or_grpc_and_scores(arbiter_wheel: Path, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "core", arbiter_wheel).ready()
    venv.assert_consistent()
    assert not HEAVY & set(venv.distributions())
    probe = ("from rewards.adapters import compute_score, trl_reward_func\n"
             "print(trl_reward_func('math')(prompts=['p'], completions=['<answer>4</answer>'], answer=[4]),"
             " compute_score('math', '<think>x</think><answer>4</answer>', '4')['score'])\n"
             "from sandbox import SandboxUnavailable\n"
             "from sandbox.docker_backend import DockerBackend\n"
             "try:\n    DockerBackend()\nexcept SandboxUnavailable as exc:\n    print(exc)")
    lines = run(venv.python, "-c", probe, cwd=tmp_path).stdout.splitlines()
    assert lines[0].split() == ["[1.0]", "2.0"] and "pip install 'arbiter[docker]'" in lines[1]

    source, out = tmp_path / "in.jsonl", tmp_path / "scores.jsonl"
    source.write_text(EXAMPLES.read_text().splitlines()[0] + "\n\n")
    scored = venv.arbiter("score", "--input", str(source), "--output", str(out), cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert [json.loads(line)["verdict"] for line in out.read_text().splitlines()] == ["correct", "error"]
    assert_names_extra(venv.arbiter("score", "--input", str(source), "--output", str(out), "--endpoint",
                                    "127.0.0.1:9", cwd=tmp_path), "services")
    assert_names_extra(venv.arbiter("serve", cwd=tmp_path), "services")
    assert_names_extra(venv.arbiter("train", cwd=tmp_path), "train")


def test_wheel_stubs_import_as_arbiter_v1_only(arbiter_wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(arbiter_wheel) as wheel:  # a pure-Python wheel installs by unpacking
        wheel.extractall(site)
    assert (site / "protos" / "arbiter" / "v1" / "verifier.proto").is_file()
    probe = ("from arbiter.v1 import sandbox_pb2_grpc, verifier_pb2, verifier_pb2_grpc\n"
             "print(verifier_pb2.__file__)\n"
             "print(verifier_pb2.DESCRIPTOR.name, verifier_pb2.DESCRIPTOR.dependencies[0].name)\n"
             "try:\n    import protos.arbiter.v1.verifier_pb2\nexcept ImportError as exc:\n    print(exc)")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    stub_file, names, second_name = proc.stdout.splitlines()
    assert Path(stub_file) == site / "protos" / "arbiter" / "v1" / "verifier_pb2.py"
    assert names == "arbiter/v1/verifier.proto arbiter/v1/common.proto"
    assert "import as `arbiter.v1`" in second_name


@pytest.mark.slow
def test_core_beside_verl_scores_through_verls_reward_loop(peer_venvs: dict[str, Venv], tmp_path: Path) -> None:
    venv = peer_venvs["verl"].ready()
    venv.assert_consistent()
    assert venv.distributions()["transformers"].startswith("5.")  # verl 0.9.1 takes 5.5.3 up to 5.11
    report = json.loads(run(venv.python, PEERS / "score_with_verl.py", tmp_path, cwd=tmp_path).stdout.splitlines()[-1])
    assert report["arbiter_from"].startswith(str(venv.path))
    assert report["manager"] == "verl.experimental.reward_loop.reward_manager.naive.NaiveRewardManager"
    expected = [2.0, 1.0, -1.0, 1.0, -1.0]  # right, wrong, unparseable gold, routed by extra_info, malformed
    assert report["scores"] == report["rm_scores"] == report["legacy_scores"] == expected
    assert report["extra"]["verdict"] == ["correct", "incorrect", "not_applicable", "correct", "error"]
    assert report["extra"]["masked"] == report["legacy_masked"] == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert report["extra"]["fault"] == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert report["metrics"]["arbiter/masked"] == 1.0 and report["metrics"]["arbiter/fault_rate"] == 0.2
    assert_names_extra(venv.arbiter("serve", cwd=tmp_path), "services")


@pytest.mark.slow
def test_core_beside_trl_scores_through_grpo_trainers_reward_step(peer_venvs: dict[str, Venv],
                                                                  tmp_path: Path) -> None:
    venv = peer_venvs["trl"].ready()
    venv.assert_consistent()
    assert not {"ray", "grpcio"} & set(venv.distributions())
    report = json.loads(run(venv.python, PEERS / "score_with_trl.py", cwd=tmp_path).stdout.splitlines()[-1])
    assert report["arbiter_from"].startswith(str(venv.path))
    assert report["names"] == ["arbiter_math", "arbiter_format", "arbiter_language"]
    assert report["rewards"] == [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, None]]  # no CoT: language n/a
    assert report["metrics"]["arbiter_math/fault_rate"] == [0.0]
    assert report["metrics"]["arbiter_language/not_applicable_rate"] == [pytest.approx(1 / 3)]
    assert report["verdicts"]["arbiter_math_verdict"] == ["correct", "incorrect", "no_answer"]
