"""Verifiers served by another process, reached by address, checked like any other verifier.

An external verifier is a gRPC server implementing arbiter.v1.Verifier (see
examples/external_verifier/). `validate_external` is the check a cluster config
runs before accepting one: the name follows the registry's rules, clashes with
no built-in or plug-in verifier, and the server answers Describe for that name.
`RemoteVerifier` is the verifier object a worker process builds for it, so the
server's own routing can include it and compose it like a local one.
"""

from __future__ import annotations

import grpc

from arbiter.v1 import verifier_pb2, verifier_pb2_grpc
from rewards.registry import Registry, RegistryError, validate_name
from rewards.types import Sample, SampleError, VerifierResult
from services import convert
from services.jobs import VerifierMeta

_DESCRIBE_TIMEOUT_S = 5.0


def describe_remote(name: str, address: str, timeout_s: float = _DESCRIBE_TIMEOUT_S) -> VerifierMeta:
    """Ask the server at `address` to describe `name`; RegistryError if it cannot or disagrees."""
    with grpc.insecure_channel(address) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        try:
            reply = stub.Describe(verifier_pb2.DescribeRequest(name=name), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise RegistryError(f"external verifier {name!r} at {address}: Describe failed: "
                                f"{exc.code().name}: {exc.details()}") from None
    info = reply.verifier
    if info.name != name:
        raise RegistryError(f"external verifier registered as {name!r} at {address} calls itself {info.name!r}")
    try:
        reference = convert.reference_from_proto(info.reference)
    except SampleError:
        raise RegistryError(f"external verifier {name!r} at {address} gives no reference kind") from None
    if not info.version:
        raise RegistryError(f"external verifier {name!r} at {address} gives no version")
    return VerifierMeta(name, info.version, reference, address)


def validate_external(name: str, address: str, registry: Registry | None = None,
                      timeout_s: float = _DESCRIBE_TIMEOUT_S) -> VerifierMeta:
    """The registry's name rules, no clash with a built-in or plug-in, and a Describe that agrees."""
    validate_name(name)
    registry = registry or Registry()
    if name in registry.names():
        raise RegistryError(f"duplicate verifier name {name!r}: already a built-in or plug-in verifier")
    return describe_remote(name, address, timeout_s)


class RemoteVerifier:
    """A verifier whose score() is a Score call to another server (used inside worker processes)."""

    def __init__(self, name: str, address: str, timeout_s: float = 60.0) -> None:
        meta = describe_remote(name, address)
        self.name, self.version, self.reference, self.address = name, meta.version, meta.reference, address
        self._timeout_s = timeout_s
        self._channel = grpc.insecure_channel(address)
        self._stub = verifier_pb2_grpc.VerifierStub(self._channel)

    def score(self, sample: Sample) -> VerifierResult:
        request = verifier_pb2.ScoreRequest(sample=convert.sample_to_proto(sample), verifiers=[self.name])
        try:
            reply = self._stub.Score(request, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.INVALID_ARGUMENT:
                field, _, message = (exc.details() or "").partition(": ")
                raise SampleError(convert.field_from_wire(field), message) from None
            raise RuntimeError(f"{self.address}: {exc.code().name}: {exc.details()}") from None
        for component in reply.components:
            if component.verifier == self.name:
                return convert.result_from_proto(component.result)
        raise RuntimeError(f"{self.address}: the reply carries no result for {self.name!r}")
