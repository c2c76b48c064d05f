"""The training config: strict YAML, errors that name the key path, the shipped default loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import DEFAULT_CONFIG, ConfigError, TrainConfig, from_dict, load_config, parse_overrides


def test_shipped_tiny_config_loads() -> None:
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg.model.init == "tiny"
    assert cfg.rewards.backend == "serve"


def test_unknown_key_is_an_error_naming_its_path() -> None:
    with pytest.raises(ConfigError, match=r"grpo\.group_sise: unknown key"):
        from_dict(TrainConfig, {"grpo": {"group_sise": 8}})


def test_wrong_type_is_an_error_naming_its_path() -> None:
    with pytest.raises(ConfigError, match=r"grpo\.group_size: expected int, got str"):
        from_dict(TrainConfig, {"grpo": {"group_size": "8"}})
    with pytest.raises(ConfigError, match=r"grpo\.group_size: expected int, got bool"):
        from_dict(TrainConfig, {"grpo": {"group_size": True}})


def test_literal_choice_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"grpo\.loss_type: expected one of"):
        from_dict(TrainConfig, {"grpo": {"loss_type": "ppo"}})
    with pytest.raises(ConfigError, match=r"rewards\.backend"):
        from_dict(TrainConfig, {"rewards": {"backend": "http"}})


def test_int_is_accepted_where_a_float_is_expected() -> None:
    assert from_dict(TrainConfig, {"grpo": {"learning_rate": 1}}).grpo.learning_rate == 1.0


def test_yaml_exponent_without_dot_gets_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"grpo\.learning_rate: .*write 3\.0e-3"):
        load_config(None, parse_overrides(["grpo.learning_rate=3e-3"]))


def test_nested_mapping_values_are_typed() -> None:
    with pytest.raises(ConfigError, match=r"rewards\.routing\.math\.format: expected a number"):
        from_dict(TrainConfig, {"rewards": {"routing": {"math": {"format": "high"}}}})


def test_impossible_values_are_rejected() -> None:
    with pytest.raises(ConfigError, match="group_size"):
        from_dict(TrainConfig, {"grpo": {"group_size": 1}})
    with pytest.raises(ConfigError, match="chunks_per_step"):
        from_dict(TrainConfig, {"grpo": {"prompts_per_step": 2}, "rollout": {"chunks_per_step": 3}})


def test_config_is_frozen() -> None:
    cfg = TrainConfig()
    with pytest.raises(AttributeError):
        cfg.seed = 1  # type: ignore[misc]


def test_overrides_apply_dotted_keys_with_yaml_values(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("grpo: {steps: 5}\n")
    cfg = load_config(path, parse_overrides(["grpo.steps=7", "rewards.backend=inprocess", "cluster.address=null"]))
    assert cfg.grpo.steps == 7 and cfg.rewards.backend == "inprocess" and cfg.cluster.address is None


def test_malformed_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["grpo.steps"])


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="<root>: expected a mapping"):
        load_config(path)


def test_learner_keys_are_checked_by_name() -> None:
    cfg = load_config(None, parse_overrides(["learner.ranks=2", "learner.micro_batch_tokens=256",
                                             "learner.precision=bf16", "learner.resources={learner: 1}"]))
    assert (cfg.learner.ranks, cfg.learner.micro_batch_tokens, cfg.learner.precision) == (2, 256, "bf16")
    assert cfg.learner.resources == {"learner": 1.0}
    with pytest.raises(ConfigError, match=r"learner\.ranks: must be at least 1"):
        from_dict(TrainConfig, {"learner": {"ranks": 0}})
    with pytest.raises(ConfigError, match=r"learner\.micro_batch_tokens: must be at least 1"):
        from_dict(TrainConfig, {"learner": {"micro_batch_tokens": 0}})
    with pytest.raises(ConfigError, match=r"learner\.precision: expected one of"):
        from_dict(TrainConfig, {"learner": {"precision": "fp16"}})
    with pytest.raises(ConfigError, match=r"learner\.device: expected one of"):
        from_dict(TrainConfig, {"learner": {"device": "tpu"}})
