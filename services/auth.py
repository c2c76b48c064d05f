"""Bearer-token check on every call, and TLS/mTLS credentials for servers and clients.

The token travels as gRPC metadata ``authorization: Bearer <token>``. Health
checks are exempt so that load balancers and Kubernetes probes, which cannot
carry a token, still see whether the server is SERVING; they reveal nothing else.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import grpc

from arbiter.config import ConfigError
from services.config import TlsFiles

_EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)
REFUSAL = "missing or wrong bearer token (authorization metadata)"


def bearer_ok(metadata: Iterable[tuple[str, str | bytes]], expected: str) -> bool:
    """Whether the first `authorization` entry is ``Bearer <expected>`` (compared in constant time)."""
    for key, value in metadata:
        if key == "authorization":
            given = value.encode() if isinstance(value, str) else value
            return hmac.compare_digest(given, f"Bearer {expected}".encode())
    return False


def token_from_env(env: str | None, field: str, where: str = "") -> str | None:
    """The token in environment variable `env` (None when no variable is configured); a ConfigError
    naming `field` when it is unset or empty, so a server never starts open by mistake."""
    if env is None:
        return None
    token = os.environ.get(env)
    if not token:
        raise ConfigError(f"{field}: environment variable {env} is not set{where}")
    return token


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses any call without the right bearer token with UNAUTHENTICATED, before it reaches a servicer."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_EXEMPT_PREFIXES):
            return handler
        if bearer_ok(handler_call_details.invocation_metadata or (), self._token):
            return handler
        return _refusal(handler)


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that only answers UNAUTHENTICATED."""

    async def deny(_request: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)

    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny, **kwargs)
    return grpc.unary_unary_rpc_method_handler(deny, **kwargs)


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """TLS with the server's pair; with a client CA, clients must present a certificate it signed (mTLS)."""
    key, cert = Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes()
    client_ca = Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def channel_credentials(ca_file: str, cert_file: str | None = None, key_file: str | None = None
                        ) -> grpc.ChannelCredentials:
    """Trust the server's CA; with a cert/key pair, present it for mTLS."""
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca_file).read_bytes(),
        private_key=Path(key_file).read_bytes() if key_file else None,
        certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
    )


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
