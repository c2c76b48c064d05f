"""The committed stubs are exactly what scripts/gen-protos makes from the committed .proto files."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUBS = ROOT / "protos" / "arbiter" / "v1"


def test_generated_stubs_match_the_proto_sources(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run([str(ROOT / "scripts" / "gen-protos"), str(tmp_path)], check=True, env=env)
    fresh = tmp_path / "arbiter" / "v1"
    generated = sorted(p.name for p in fresh.iterdir())
    assert generated, "gen-protos produced nothing"
    committed = sorted(p.name for p in STUBS.iterdir() if "_pb2" in p.name)
    assert generated == committed, "stub files differ from the .proto sources: run ./scripts/gen-protos"
    stale = [name for name in generated if not filecmp.cmp(fresh / name, STUBS / name, shallow=False)]
    assert not stale, f"stale stubs {stale}: run ./scripts/gen-protos"


def test_every_enum_starts_with_unspecified_zero():
    from arbiter.v1 import common_pb2, sandbox_pb2, verifier_pb2

    for module in (common_pb2, sandbox_pb2, verifier_pb2):
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            assert enum.values[0].number == 0
            assert enum.values[0].name.endswith("_UNSPECIFIED"), enum.name
