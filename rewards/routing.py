"""Which verifiers score which task, with what weight.

The same routing config drives `arbiter score`, the services client and the
trainer. A task maps to an ordered set of weighted verifiers; the first one is
the task's primary (accuracy) verifier, whose verdict is the sample's verdict.

YAML form (unknown keys are an error)::

    tasks:
      math: {math: 1.0, format: 1.0}
      code: {code: 1.0}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rewards.types import SampleError


@dataclass(frozen=True)
class WeightedVerifier:
    verifier: str
    weight: float


@dataclass(frozen=True)
class RoutingConfig:
    tasks: dict[str, tuple[WeightedVerifier, ...]]

    def route(self, task: str) -> tuple[WeightedVerifier, ...]:
        if task not in self.tasks:
            raise SampleError("task", f"unknown task {task!r}; routed tasks: {', '.join(sorted(self.tasks))}")
        return self.tasks[task]

    def primary(self, task: str) -> str:
        """The task's primary (accuracy) verifier, whose verdict is the sample's."""
        return self.route(task)[0].verifier

    def verifier_names(self) -> set[str]:
        return {wv.verifier for route in self.tasks.values() for wv in route}

    @classmethod
    def from_dict(cls, raw: Any, source: str = "routing config") -> RoutingConfig:
        if not isinstance(raw, dict) or set(raw) != {"tasks"}:
            raise ValueError(f"{source}: expected exactly one top-level key 'tasks'")
        if not isinstance(raw["tasks"], dict) or not raw["tasks"]:
            raise ValueError(f"{source}: 'tasks' must be a non-empty mapping of task -> {{verifier: weight}}")
        tasks: dict[str, tuple[WeightedVerifier, ...]] = {}
        for task, weights in raw["tasks"].items():
            if not isinstance(weights, dict) or not weights:
                raise ValueError(f"{source}: tasks.{task} must be a non-empty mapping of verifier -> weight")
            route = []
            for name, weight in weights.items():
                if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                    raise ValueError(f"{source}: tasks.{task}.{name} weight must be a finite number")
                route.append(WeightedVerifier(str(name), float(weight)))
            tasks[str(task)] = tuple(route)
        return cls(tasks)

    @classmethod
    def from_tasks(cls, tasks: dict[str, dict[str, float]], source: str = "routing") -> RoutingConfig:
        """The routing of a config's `routing:` mapping (task -> {verifier: weight}); empty = DEFAULT_ROUTING."""
        return cls.from_dict({"tasks": tasks}, source) if tasks else DEFAULT_ROUTING

    @classmethod
    def load(cls, path: str | Path) -> RoutingConfig:
        with open(path) as f:
            return cls.from_dict(yaml.safe_load(f), source=str(path))

    @classmethod
    def load_or_default(cls, path: str | Path | None) -> RoutingConfig:
        """The routing in `path`; DEFAULT_ROUTING when no file is named (None or "")."""
        return cls.load(path) if path else DEFAULT_ROUTING

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": {task: {wv.verifier: wv.weight for wv in route} for task, route in self.tasks.items()}}


class SingleVerifierRouting(RoutingConfig):
    """Routes every task to one verifier with weight 1, so that verifier's own result is the sample's."""

    def __init__(self, verifier: str) -> None:
        super().__init__({})
        object.__setattr__(self, "verifier", verifier)

    def route(self, task: str) -> tuple[WeightedVerifier, ...]:
        return (WeightedVerifier(self.verifier, 1.0),)  # type: ignore[attr-defined]

    def verifier_names(self) -> set[str]:
        return {self.verifier}  # type: ignore[attr-defined]


# Accuracy plus format, weighted equally as open-r1 does; code is graded on its tests alone
# because code completions are usually fenced blocks rather than the R1 template.
DEFAULT_ROUTING = RoutingConfig.from_dict(
    {
        "tasks": {
            "math": {"math": 1.0, "format": 1.0},
            "code": {"code": 1.0},
            "format": {"format": 1.0},
        }
    }
)
