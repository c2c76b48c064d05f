"""Bearer token and TLS/mTLS, over real sockets, with a throw-away CA made for the test."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_harness import RunningServer, scoring
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from rewards.types import Sample, Verdict
from services.client import ClientError, score_sync
from services.config import ClientConfig, ServerConfig, TlsFiles

REQUEST = verifier_pb2.ScoreRequest(sample=verifier_pb2.Sample(
    id="a", task="format", completion="<think>x</think><answer>1</answer>"))
SAMPLE = Sample(id="a", task="format", completion="<think>x</think><answer>1</answer>")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(directory: Path, stem: str, common_name: str, issuer: tuple | None, is_ca: bool = False) -> tuple:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    signer_key, signer_name = issuer if issuer else (key, _name(common_name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{stem}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return key, cert.subject


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = _issue(d, "ca", "arbiter test CA", None, is_ca=True)
    _issue(d, "server", "localhost", ca)
    _issue(d, "client", "trainer", ca)
    return d


@pytest.fixture(scope="module")
def secured(tmp_path_factory, pki):
    """One server requiring a token and client certificates (mTLS)."""
    tls = TlsFiles(str(pki / "server.pem"), str(pki / "server.key"), client_ca_file=str(pki / "ca.pem"))
    running = RunningServer(ServerConfig(port=0, token="s3cret", tls=tls,
                                         scoring=scoring(tmp_path_factory.mktemp("sec"), worker_processes=1)))
    yield running
    running.stop()


def _channel(pki: Path, address: str, with_client_cert: bool = True) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes() if with_client_cert else None,
        certificate_chain=(pki / "client.pem").read_bytes() if with_client_cert else None,
    )
    return grpc.secure_channel(address, creds)


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),), (("authorization", "s3cret"),)],
                         ids=["missing", "wrong", "not-bearer"])
def test_missing_or_wrong_token_is_unauthenticated(secured, pki, metadata):
    with _channel(pki, secured.address) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        for call in (lambda: stub.Score(REQUEST, timeout=10, metadata=metadata),
                     lambda: list(stub.ScoreStream(iter([REQUEST]), timeout=10, metadata=metadata))):
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_right_token_over_mtls_is_served(secured, pki):
    with _channel(pki, secured.address) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        result = stub.Score(REQUEST, timeout=30, metadata=(("authorization", "Bearer s3cret"),))
    assert result.verdict == common_pb2.VERDICT_CORRECT


def test_health_needs_no_token(secured, pki):
    with _channel(pki, secured.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_mtls_server_refuses_a_client_without_certificate(secured, pki):
    with _channel(pki, secured.address, with_client_cert=False) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Score(REQUEST, timeout=10, metadata=(("authorization", "Bearer s3cret"),))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_cannot_talk_to_a_tls_server(secured):
    with grpc.insecure_channel(secured.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            verifier_pb2_grpc.VerifierStub(channel).Score(REQUEST, timeout=10)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def test_client_with_token_and_certificates_scores(secured, pki):
    config = ClientConfig(endpoint=secured.address, token="s3cret", tls_ca_file=str(pki / "ca.pem"),
                          tls_cert_file=str(pki / "client.pem"), tls_key_file=str(pki / "client.key"))
    [scored] = score_sync(config, [SAMPLE])
    assert scored.verdict is Verdict.CORRECT


def test_client_with_wrong_token_raises_instead_of_retrying(secured, pki):
    config = ClientConfig(endpoint=secured.address, token="nope", tls_ca_file=str(pki / "ca.pem"),
                          tls_cert_file=str(pki / "client.pem"), tls_key_file=str(pki / "client.key"))
    with pytest.raises(ClientError, match="UNAUTHENTICATED"):
        score_sync(config, [SAMPLE])


def test_tls_without_client_certificates(tmp_path, pki):
    tls = TlsFiles(str(pki / "server.pem"), str(pki / "server.key"))
    running = RunningServer(ServerConfig(port=0, tls=tls, enable_sandbox_service=False,
                                         scoring=scoring(tmp_path, worker_processes=1)))
    try:
        [scored] = score_sync(ClientConfig(endpoint=running.address, tls_ca_file=str(pki / "ca.pem")), [SAMPLE])
    finally:
        running.stop()
    assert scored.verdict is Verdict.CORRECT
