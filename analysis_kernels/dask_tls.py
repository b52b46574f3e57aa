"""Authenticated Dask traffic on Kubernetes: each user's scheduler, workers and client speak TLS
with one certificate that only that user's pods hold, and require it of every peer.

Network policies keep other tenants away from a user's Dask pods; this keeps them away even
where no policy is enforced. The hub makes the certificate (``user_certificate``) into the
Secret ``dask-tls`` of the user's namespace; the user's server and Dask pods mount it and point
Dask's ``distributed.comm.tls`` settings at it (``tls_environment``). A peer without it fails
the handshake: the scheduler refuses it itself.

dask-kubernetes 2026.3.0 opens its own connections to the scheduler (``rpc(address)``) without
TLS arguments; the ``facility-tls://`` scheme (``FacilityTLSBackend``, registered as a
``distributed.comm.backends`` entry point) is TLS that takes its certificate from Dask's
configuration when the caller gives none, so ``FacilityKubeCluster`` hands that address to
upstream's code unchanged.
"""

from __future__ import annotations

import datetime

from distributed.comm.tcp import TLSBackend, TLSConnector
from distributed.security import Security

TLS_MOUNT = "/var/run/secrets/facility-dask"
CERT, KEY = "tls.crt", "tls.key"
SCHEME = "facility-tls"


def user_certificate(owner: str, days: int = 3650) -> dict[str, str]:
    """A self-signed certificate and key for one user's Dask clusters (PEM, as Secret data).
    Dask checks the peer's certificate against the CA file, not its host name, so the same
    pair serves scheduler, workers and client, and nobody else's pair passes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"dask-{owner}")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return {
        CERT: certificate.public_bytes(serialization.Encoding.PEM).decode(),
        KEY: key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    }


def tls_environment(mount: str = TLS_MOUNT) -> dict[str, str]:
    """Dask's TLS settings for every role, pointing at the mounted certificate, encryption
    required: what the user's server, scheduler and workers all get."""
    cert, key = f"{mount}/{CERT}", f"{mount}/{KEY}"
    env = {
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": cert,
    }
    for role in ("SCHEDULER", "WORKER", "CLIENT"):
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__CERT"] = cert
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__KEY"] = key
    return env


SCHEDULER_HTTP_ROUTES = {
    # The operator retires workers, checks idleness and reads the adaptive target through
    # the scheduler's HTTP API; without it, it falls back to plain-TCP RPC, which a TLS
    # scheduler refuses. Port 8787 admits only the owner's namespace and the operator.
    "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES": str(
        [
            "distributed.http.scheduler.prometheus",
            "distributed.http.scheduler.info",
            "distributed.http.scheduler.json",
            "distributed.http.health",
            "distributed.http.proxy",
            "distributed.http.statics",
            "distributed.http.scheduler.api",
        ]
    )
}


class FacilityTLSConnector(TLSConnector):
    def _get_connect_args(self, **connection_args):
        if "ssl_context" not in connection_args:
            connection_args = Security().get_connection_args("client") | connection_args
        return super()._get_connect_args(**connection_args)


class FacilityTLSBackend(TLSBackend):
    """TLS whose connections default to the certificate in Dask's configuration."""

    _connector_class = FacilityTLSConnector
