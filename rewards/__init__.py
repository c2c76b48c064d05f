"""Pure scoring logic: verdicts, the verifier registry, routing and composition.

No Ray, gRPC, protobuf or torch imports live here; services and the trainer
build on this package, never the other way round.
"""

from rewards.compose import ScoredSample, compose, score_sample
from rewards.registry import Registry, RegistryError, Verifier, default_registry, get_verifier
from rewards.routing import DEFAULT_ROUTING, RoutingConfig, WeightedVerifier
from rewards.types import Sample, SampleError, Verdict, VerifierResult

__all__ = [
    "DEFAULT_ROUTING",
    "Registry",
    "RegistryError",
    "RoutingConfig",
    "Sample",
    "SampleError",
    "ScoredSample",
    "Verdict",
    "Verifier",
    "VerifierResult",
    "WeightedVerifier",
    "compose",
    "default_registry",
    "get_verifier",
    "score_sample",
]
