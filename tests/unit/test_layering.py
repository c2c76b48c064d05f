"""Dependencies point one way: trainer/services -> rewards, sandbox, protos and the config loader; never back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "rewards": {"services", "trainer", "protos", "config", "arbiter", "ray", "grpc", "grpc_health", "google",
                "torch"},
    "sandbox": {"rewards", "services", "trainer", "protos", "config", "arbiter", "ray", "grpc", "torch"},
    "protos": {"rewards", "sandbox", "services", "trainer", "config", "arbiter"},
    "services": {"trainer", "arbiter"},
    "trainer": {"arbiter", "protos"},
}


_SEAMS = {"arbiter.v1": "protos", "arbiter.config": "config"}


def layer_of(module: str) -> str:
    """The layer a module belongs to: its top-level package, except the two seams under `arbiter`: the
    stubs `arbiter.v1` (protos/) and the strict config loader `arbiter.config`."""
    for seam, layer in _SEAMS.items():
        if module == seam or module.startswith(seam + "."):
            return layer
    return module.split(".")[0]


def imported_top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(layer_of(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(layer_of(node.module))
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_upward(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_top_level_names(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)}: {', '.join(sorted(bad))}")
    assert not offenders, "imports against the layering:\n" + "\n".join(offenders)
