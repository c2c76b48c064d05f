"""protos/ holds the wire contract's .proto sources and their stubs, which import as `arbiter.v1` only.

Importing them by a second name (`arbiter.v1`) would make a second module of each, and register
each .proto file with protobuf's descriptor pool twice; this stops that at the first such import.
"""

raise ImportError("the generated stubs import as `arbiter.v1` (from arbiter.v1 import verifier_pb2), not `protos`")
