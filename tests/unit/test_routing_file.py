"""The routing the trainer hands the verifier services keeps each task's verifiers in order."""

from __future__ import annotations

from pathlib import Path

from rewards.routing import RoutingConfig
from trainer.config import load_config
from trainer.reward_client import services_routing

REPO = Path(__file__).resolve().parents[2]


def test_routing_written_for_the_services_keeps_each_tasks_primary_first(tmp_path: Path) -> None:
    routing = RoutingConfig.from_dict({"tasks": load_config(REPO / "configs/tiny.yaml").rewards.routing})
    written = RoutingConfig.from_tasks(services_routing(routing))
    assert {task: route[0].verifier for task, route in written.tasks.items()} == {"math": "math"}
    assert [r.verifier for r in written.tasks["math"]] == [r.verifier for r in routing.tasks["math"]]
