"""One table of verifiers by name: built-ins listed explicitly, plug-ins by entry point.

A verifier is any object with `name`, `version`, `reference` (what it needs
from the sample: "answer", "tests" or "none") and one entry point,
`score(sample) -> VerifierResult`. Out-of-tree verifiers register under the
entry-point group ``arbiter.verifiers`` (``name = "package.module:Factory"``);
services add remote ones by address through `Registry.add`. Every path goes
through the same validation, and a duplicate name is an error.
"""

from __future__ import annotations

import pkgutil
import re
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from rewards.types import Sample, VerifierResult

ENTRY_POINT_GROUP = "arbiter.verifiers"
REFERENCE_KINDS = ("answer", "tests", "none")

# Built-ins by import path, so that `arbiter score --verifier format` never
# imports sympy or starts the math worker pool.
BUILTIN_VERIFIERS: dict[str, str] = {
    "math": "rewards.math:MathVerifier",
    "format": "rewards.format:StrictFormatVerifier",
    "tag_count": "rewards.format:TagCountVerifier",
    "language": "rewards.language:LanguageConsistencyVerifier",
    "cosine_length": "rewards.length:CosineLengthVerifier",
    "overlong": "rewards.length:SoftOverlongVerifier",
    "repetition": "rewards.repetition:RepetitionPenaltyVerifier",
    "code": "rewards.code:CodeVerifier",
}

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


@runtime_checkable
class Verifier(Protocol):
    name: str
    version: str
    reference: str

    def score(self, sample: Sample) -> VerifierResult:
        """Judge one sample. Never raises for bad model output; raises SampleError for a bad sample."""
        ...


class RegistryError(ValueError):
    pass


def validate_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise RegistryError(f"invalid verifier name {name!r}: use lowercase letters, digits, '_', '-', '.'")


def validate_verifier(name: str, verifier: object) -> Verifier:
    """Check that a built, plugged-in or remote verifier honours the contract."""
    for attr in ("name", "version", "reference"):
        if not isinstance(getattr(verifier, attr, None), str):
            raise RegistryError(f"verifier {name!r} has no string attribute {attr!r}")
    if verifier.name != name:  # type: ignore[attr-defined]
        raise RegistryError(f"verifier registered as {name!r} calls itself {verifier.name!r}")  # type: ignore[attr-defined]
    if verifier.reference not in REFERENCE_KINDS:  # type: ignore[attr-defined]
        raise RegistryError(f"verifier {name!r}: reference must be one of {REFERENCE_KINDS}")
    if not callable(getattr(verifier, "score", None)):
        raise RegistryError(f"verifier {name!r} has no score(sample) method")
    return verifier  # type: ignore[return-value]


class Registry:
    """Verifier factories by name; instances are built once per process and shared."""

    def __init__(self, include_plugins: bool = True) -> None:
        self._factories: dict[str, Callable[[], Verifier]] = {}
        self._instances: dict[str, Verifier] = {}
        self._lock = threading.Lock()
        for name, path in BUILTIN_VERIFIERS.items():
            self.add(name, lambda path=path: pkgutil.resolve_name(path)())
        if include_plugins:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                self.add(ep.name, lambda ep=ep: ep.load()())

    def add(self, name: str, factory: Callable[[], Verifier]) -> None:
        validate_name(name)
        if name in self._factories:
            raise RegistryError(f"duplicate verifier name {name!r}")
        self._factories[name] = factory

    def configure(self, name: str, factory: Callable[[], Verifier]) -> None:
        """Build `name` with `factory` instead (a built-in with a non-default config); before first use."""
        with self._lock:
            if name not in self._factories:
                raise RegistryError(f"unknown verifier {name!r}; known: {', '.join(self.names())}")
            if name in self._instances:
                raise RegistryError(f"verifier {name!r} is already built; configure it before first use")
            self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Verifier:
        if name not in self._factories:
            raise RegistryError(f"unknown verifier {name!r}; known: {', '.join(self.names())}")
        with self._lock:
            if name not in self._instances:
                self._instances[name] = validate_verifier(name, self._factories[name]())
            return self._instances[name]


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry (built-ins plus installed plug-ins)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def get_verifier(name: str) -> Verifier:
    return default_registry().get(name)
