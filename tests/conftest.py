"""Shared fixtures: a real local Ray cluster, started once per test session when a test asks for it."""

from __future__ import annotations

import os
import socket

import pytest

# Ray 2.60 turns token auth on by default and tries to phone home; neither belongs in tests.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster shared by every test in the session (start-up costs ~10 s)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",  # never join a cluster some other process started on this host
            num_cpus=8,  # logical slots: actors and Serve replicas share the 2 real cores
            include_dashboard=False,
            configure_logging=False,
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()
