"""A certificate authority made on the spot, for the local facility's TLS servers.

The development IAM must speak HTTPS (token validators fetch its keys over HTTPS only) and the
storage server's root:// and https:// insist on TLS. One CA signs both; clients trust it
through the files here: ``ca.pem``, ``bundle.pem`` (the system's CAs plus this one, for
``SSL_CERT_FILE``/``REQUESTS_CA_BUNDLE``) and ``certs/`` (OpenSSL's hashed directory, for
``X509_CERT_DIR``). The certificate helpers are hub_config.local.pki.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hub_config.local.pki import pem_key, private_key, signed_certificate, x509_name

SYSTEM_BUNDLE = Path(ssl.get_default_verify_paths().openssl_cafile)


class LocalCA:
    """A CA in ``directory`` (made anew each time: nothing outlives the facility's run)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        self._key = private_key()
        self._cert = signed_certificate(x509_name("Local facility test CA"), self._key, ca=True)
        self.ca_file.write_bytes(self._pem(self._cert))
        system = SYSTEM_BUNDLE.read_bytes() if SYSTEM_BUNDLE.is_file() else b""
        self.bundle.write_bytes(system + b"\n" + self._pem(self._cert))
        self.cert_dir.mkdir(exist_ok=True)
        digest = subprocess.run(
            ["openssl", "x509", "-hash", "-noout", "-in", str(self.ca_file)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        link = self.cert_dir / f"{digest}.0"
        link.unlink(missing_ok=True)
        link.symlink_to(self.ca_file)

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def bundle(self) -> Path:
        return self.directory / "bundle.pem"

    @property
    def cert_dir(self) -> Path:
        return self.directory / "certs"

    @staticmethod
    def _pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, name: str, owner: int | None = None) -> tuple[Path, Path]:
        """A server certificate for 127.0.0.1 and localhost: (cert, key) files, the key 0600
        (and owned by ``owner`` when given, for a server that drops privileges)."""
        key = private_key()
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = signed_certificate(
            x509_name("localhost"), key, self._cert.subject, self._key, sans=sans
        )
        cert_file, key_file = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        cert_file.write_bytes(self._pem(cert))
        key_file.unlink(missing_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem_key(key))
        if owner is not None:
            os.chown(key_file, owner, -1)
        return cert_file, key_file

    def client_environment(self) -> dict[str, str]:
        """What makes Python (ssl, requests, aiohttp) and the XRootD client trust this CA."""
        return {
            "SSL_CERT_FILE": str(self.bundle),
            "REQUESTS_CA_BUNDLE": str(self.bundle),
            "X509_CERT_DIR": str(self.cert_dir),
        }
