"""Verifiers as a network service: the gRPC edge around `rewards` and `sandbox`.

Start with services.core: one file, every RPC's logic once, no transport. It turns
arbiter.v1 requests into plain rewards.Sample objects (services.convert is the only
place messages meet dataclasses), routes and composes what it routes, scores in
warm worker processes (services.workers over rewards.pool, the one killable pool;
services.worker_main is what runs inside them, services.jobs what travels between:
reward code never runs on a gRPC thread or the event loop; a sample that overruns
has its worker killed and gets a TIMEOUT, a worker that dies gets its sample an
explicit ERROR, and both are replaced), answers repeated answers from a
content-addressed verdict cache (services.cache), and hands every sample back
exactly once: a result, or an error naming the field.

Two hosts adapt the core: the standalone grpc.aio server (services.servicer and
services.server, with health, reflection, bearer token and TLS from services.auth,
Prometheus metrics from services.metrics) and Ray Serve (services.replica; the
router app is services.router; the builders services.serve_app). Callers use
services.client.VerifierClient, which batches, retries idempotently by sample id,
routes tasks to verifiers on several endpoints (external verifiers included,
checked by services.external), composes their components, and never lets
protobuf out.
"""
