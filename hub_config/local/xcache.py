"""An XCache on this machine: XRootD's proxy file cache in front of the token-protected storage.

The same ``xrootd`` in caching-proxy mode (``ofs.osslib libXrdPss.so``, ``pss.cachelib
libXrdPfc.so``): files read through it are fetched from the origin once, kept on its disk, and
served from there afterwards, over ``root://`` and ``https://`` like the origin.

Who reads what is decided on the cache, with the user's token, by the same scitokens rules as
on the origin (its groups and scopes): the cache opens nothing for a token the origin's rules
would refuse, whether the file is already on its disk or not. The cache reaches the origin
with a credential of its own, a robot token of a service issuer the origin trusts for its
scopes (``storage.read:/``), not with the user's token: a token proven with ztn is spent in
the handshake with the cache and travels in no URL, and the cache fetches a file's blocks
once for every reader, so no user's token could stand for the later ones.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from hub_config.local.storage import BASE, WLCG_ANY, StorageServer

CACHE_RAM = "1g"
CACHE_BLOCK = "1M"


def _b64(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes((number.bit_length() + 7) // 8)).decode()


class ServiceCredential:
    """A robot issuer and its token: what a site's IAM would issue to its XCache (a client
    credentials grant), made here so that the origin trusts its keys and nothing else."""

    def __init__(self, issuer: str = "https://xcache-robot.local", scope: str = "storage.read:/"):
        self.issuer, self.scope = issuer, scope
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = uuid.uuid4().hex[:8]

    def jwks(self) -> dict:
        public = self._key.public_key().public_numbers()
        key = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self._kid}
        return {"keys": [key | {"n": _b64(public.n), "e": _b64(public.e)}]}

    def token(self, lifetime: int = 24 * 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "xcache",
            "aud": WLCG_ANY,
            "scope": self.scope,
            "wlcg.ver": "1.0",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})


@dataclass
class CacheServer(StorageServer):
    """An XCache for ``origin`` (``host:port`` of a ztn-protected XRootD), trusting the same
    ``issuer`` for its users, reaching the origin with ``credential`` (a robot token)."""

    origin: str = ""
    credential: str = field(default="", repr=False)

    def __post_init__(self):
        super().__post_init__()
        if not re.fullmatch(r"[\w.-]+:\d+", self.origin):
            raise ValueError(f"CacheServer origin must be host:port, not {self.origin!r}")
        if not self.credential:
            raise ValueError("CacheServer needs a credential (a token the origin accepts)")

    @property
    def cached(self) -> Path:
        """Where the cache keeps the files it fetched (and their ``.cinfo`` block maps)."""
        return self.directory / "cached"

    def _data_directives(self) -> str:
        self.cached.mkdir(parents=True, exist_ok=True)
        return (
            f"all.export {BASE}\n"
            "ofs.osslib libXrdPss.so\n"
            f"pss.origin {self.origin}\n"
            "pss.cachelib libXrdPfc.so\n"
            f"oss.localroot {self.cached}\n"
            f"pfc.ram {CACHE_RAM}\n"
            f"pfc.blocksize {CACHE_BLOCK}\n"
            "pfc.diskusage 0.90 0.95\n"
        )

    def _environment(self) -> dict[str, str]:
        """The cache's XRootD client: its robot token (0600, owned by the server's user, or
        the client ignores it) and the CA that signed the origin's certificate."""
        token = self.directory / "credential"
        token.write_text(self.credential + "\n")
        token.chmod(0o600)
        self._own(token)
        return super()._environment() | {
            "BEARER_TOKEN_FILE": str(token),
            "X509_CERT_DIR": str(self.directory / "certs"),
        }


def start_cache(origin: StorageServer, directory: Path, **options) -> CacheServer:
    """A cache in ``directory`` in front of a :class:`StorageServer` started with a
    ``ServiceCredential``'s keys in its ``services``, trusting the origin's issuer and CA."""
    credential = options.pop("credential")
    return CacheServer(
        directory,
        issuer=origin.issuer,
        ca=origin.ca,
        group_areas=dict(origin.group_areas),
        audiences=list(origin.audiences),
        origin=f"127.0.0.1:{origin.port}",
        credential=credential,
        **options,
    ).start()


@dataclass
class SummaryListener:
    """XRootD's summary monitoring (``xrd.report``) received on a UDP port of 127.0.0.1: the
    bytes a server sent over its links so far (``<stats id="link">``'s ``<out>``)."""

    port: int = 0
    bytes_out: int = 0
    reports: int = 0
    _socket: socket.socket = field(init=False, repr=False)

    def __post_init__(self):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", self.port))
        self._socket.settimeout(0.5)
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65536).decode(errors="replace")
            except TimeoutError:
                continue
            link = re.search(r'<stats id="link">.*?<out>(\d+)</out>', data, re.S)
            if link:
                self.bytes_out, self.reports = int(link.group(1)), self.reports + 1

    def settled(self, timeout: float = 10) -> int:
        """The bytes sent, once two reports in a row agree (reports come each second)."""
        deadline = time.monotonic() + timeout
        last = (-1, self.reports)
        while time.monotonic() < deadline:
            time.sleep(1.1)
            if self.reports > last[1] and self.bytes_out == last[0]:
                return self.bytes_out
            last = (self.bytes_out, self.reports)
        raise RuntimeError(f"no settled xrd.report on 127.0.0.1:{self.port} in {timeout:.0f} s")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()
