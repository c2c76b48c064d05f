"""Every listener binds loopback unless the config names a host; an open one needs a token or an explicit opt-out."""

from __future__ import annotations

import logging

import pytest

from arbiter.config import ConfigError
from services import cluster_config
from services.exposure import check_exposure, is_loopback, listeners


def test_defaults_bind_loopback_only_where_the_host_is_configurable():
    config = cluster_config.parse({})
    assert [lsn.host for lsn in listeners(config, standalone=True)] == ["127.0.0.1"]
    serve = {lsn.key: lsn.host for lsn in listeners(config, standalone=False)}
    assert serve["serve.http_host"] == serve["health.host"] == "127.0.0.1"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_loopback(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "10.0.0.7", "verifiers.internal"])
def test_other_hosts_are_not_loopback(host):
    assert not is_loopback(host)


def test_standalone_on_loopback_needs_no_token():
    check_exposure(cluster_config.parse({}), standalone=True)


def test_non_loopback_bind_without_auth_refuses_naming_the_keys():
    config = cluster_config.parse({"standalone": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError) as refused:
        check_exposure(config, standalone=True)
    message = str(refused.value)
    assert message.startswith("auth.token_env:")
    assert "standalone.host" in message and "auth.allow_unauthenticated: true" in message


def test_serve_needs_a_token_because_its_grpc_proxy_binds_every_interface():
    with pytest.raises(ConfigError, match="Ray Serve's gRPC proxy on ::"):
        check_exposure(cluster_config.parse({}), standalone=False)


def test_a_token_allows_a_non_loopback_bind():
    config = cluster_config.parse({"auth": {"token_env": "ARBITER_TOKEN"}, "standalone": {"host": "0.0.0.0"}})
    check_exposure(config, standalone=True)
    check_exposure(config, standalone=False)


def test_allow_unauthenticated_starts_and_says_so_in_the_log(caplog):
    config = cluster_config.parse({"auth": {"allow_unauthenticated": True}, "health": {"host": "0.0.0.0"}})
    with caplog.at_level(logging.WARNING, logger="services.exposure"):
        check_exposure(config, standalone=False)
    assert "WITHOUT authentication" in caplog.text and "health.host" in caplog.text


def test_allow_unauthenticated_must_be_a_boolean():
    with pytest.raises(ConfigError, match=r"auth\.allow_unauthenticated"):
        cluster_config.parse({"auth": {"allow_unauthenticated": "yes"}})
