"""Fixtures shared by the unit tests (no Ray, no sockets)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rewards.math import MathVerifier


@pytest.fixture(scope="module")
def math_verifier() -> Iterator[MathVerifier]:
    """The math verifier with its default config and warm workers, closed after the module."""
    v = MathVerifier()
    v.warm()
    yield v
    v.close()
