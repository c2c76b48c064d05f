"""Client and server configs: strict parsing, validation naming the key, and the client's local decisions."""

from __future__ import annotations

import asyncio

import pytest

from rewards.routing import DEFAULT_ROUTING
from rewards.types import Sample
from services.client import VerifierClient
from services.config import ClientConfig, ConfigError, FaultPolicy, ScoringConfig, ServerConfig, from_dict


def test_server_config_from_dict_builds_nested_dataclasses():
    config = from_dict(ServerConfig, {"port": 0, "token": "t", "tls": {"cert_file": "c", "key_file": "k"},
                                      "scoring": {"worker_processes": 3, "verifiers": ["math"],
                                                  "external": {"judge": "10.0.0.7:50051"}, "sample_timeout_s": 5}})
    assert config.scoring.worker_processes == 3
    assert config.scoring.verifiers == ("math",)
    assert config.scoring.sample_timeout_s == 5.0
    assert config.tls.client_ca_file is None


def test_scoring_config_sets_the_math_verifiers_config():
    config = from_dict(ScoringConfig, {"math": {"audit_fraction": 1.0, "timeout_s": 2}})
    assert (config.math.audit_fraction, config.math.timeout_s) == (1.0, 2.0)
    assert from_dict(ScoringConfig, {}).math.audit_fraction == 0.05  # the math verifier's own default


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"prot": 1}, "prot"),
        ({"scoring": {"workers": 2}}, "scoring.workers"),
        ({"port": "50051"}, "port"),
        ({"port": True}, "port"),
        ({"port": 70000}, "port"),
        ({"scoring": {"worker_processes": 0}}, "scoring.worker_processes"),
        ({"scoring": {"external": {"judge": "no-port"}}}, "scoring.external.judge"),
        ({"scoring": {"plugins": {"Bad Name": "m:F"}}}, "scoring.plugins"),
        ({"scoring": {"plugins": {"x": "m:F"}, "external": {"x": "h:1"}}}, "scoring.external.x"),
        ({"scoring": {"math": {"audit": 0.5}}}, "scoring.math.audit"),
        ({"scoring": {"math": {"audit_fraction": 2}}}, "scoring.math"),
    ],
    ids=["unknown-key", "unknown-nested-key", "wrong-type", "bool-for-int", "port-range", "no-workers",
         "address-without-port", "bad-name", "plugin-and-external", "unknown-math-key", "audit-out-of-range"],
)
def test_bad_server_config_names_the_key(raw, path):
    with pytest.raises(ConfigError) as info:
        from_dict(ServerConfig, raw)
    assert str(info.value).startswith(path)


def test_client_config_parses_fault_policies_by_value():
    config = from_dict(ClientConfig, {"endpoints": {"judge": "h:1"}, "fault_policy": {"judge": "mask"},
                                      "default_fault_policy": "fail"})
    assert config.fault_policy == {"judge": FaultPolicy.MASK}
    assert config.default_fault_policy is FaultPolicy.FAIL


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"fault_policy": {"judge": "ignore"}}, "fault_policy.judge"),
        ({"max_batch": 0}, "max_batch"),
        ({"deadline_s": 0}, "deadline_s"),
        ({"tls_cert_file": "c"}, "tls_cert_file"),
        ({"tls_cert_file": "c", "tls_key_file": "k"}, "tls_ca_file"),
    ],
    ids=["unknown-policy", "empty-batch", "no-deadline", "cert-without-key", "mtls-without-ca"],
)
def test_bad_client_config_names_the_key(raw, path):
    with pytest.raises(ConfigError) as info:
        from_dict(ClientConfig, raw)
    assert str(info.value).startswith(path)


def test_scoring_config_defaults_are_valid():
    ScoringConfig().validate()
    ServerConfig().validate()
    ClientConfig().validate()


def test_verifiers_go_to_their_own_endpoint_or_the_default():
    client = VerifierClient(ClientConfig(endpoint="main:1", endpoints={"judge": "ext:2"}))
    assert client.endpoint_of("judge") == "ext:2"
    assert client.endpoint_of("math") == "main:1"
    assert client.policy("judge") is FaultPolicy.RETRY


def test_backoff_grows_exponentially_up_to_the_cap():
    client = VerifierClient(ClientConfig(backoff_initial_s=0.1, backoff_max_s=1.0))
    assert 0.05 <= client.backoff_s(1) <= 0.1
    assert 0.2 <= client.backoff_s(3) <= 0.4
    assert 0.5 <= client.backoff_s(10) <= 1.0


def test_unknown_task_is_an_input_error_without_any_call():
    client = VerifierClient(ClientConfig(endpoint="127.0.0.1:9"), DEFAULT_ROUTING)
    [scored] = asyncio.run(client.score([Sample(id="x", task="poetry", completion="")]))
    assert scored.error_field == "task"
    assert scored.id == "x"
