"""The interface every execution backend implements (local bwrap jails, Docker, the warm pool)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from sandbox.api import RunRequest, RunResult


@runtime_checkable
class Backend(Protocol):
    name: str
    image_id: str | None  # the image programs run from, for backends that have one (Docker)

    def run(self, request: RunRequest) -> RunResult:
        """Run one request to completion under its limits; thread-safe."""
        ...

    def describe(self) -> str:
        """One line: what isolation and which limit mechanisms are in force."""
        ...

    def close(self) -> None:
        """Stop whatever the backend keeps running (jails, containers, daemons)."""
        ...
