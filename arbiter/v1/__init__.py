"""The wire contract `arbiter.v1`: the stubs ./scripts/gen-protos generates from protos/arbiter/v1/*.proto.

protoc run with the include root `-I protos` (the convention every other language's client follows)
names the Python stubs `arbiter.v1.*_pb2`, so this package is where they import from; they stay beside
their .proto sources in protos/ (the repository's and the wheel's layout alike), and this package's
search path points there. `arbiter.v1` is their only import name: a second one would register each
.proto file twice in protobuf's descriptor pool.
"""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parents[2] / "protos" / "arbiter" / "v1")]
