"""A grid storage element on this machine: XRootD with WLCG token authorization.

One ``xrootd`` process (Debian's packages) serves ``root://`` (ztn token authentication over
TLS) and ``https://`` (XrdHttp, the token in the ``Authorization``
header) from ``<directory>/data``, exporting ``/store``. The scitokens plugin trusts one
issuer, the development IAM, and decides what a token may do:

- its ``scope``, relative to ``/store``: ``storage.read:/user/alice`` reads
  ``/store/user/alice``, ``storage.create:``/``storage.modify:`` write there;
- its ``wlcg.groups``, through the authorization database: ``/cms`` reads ``/store/cms``
  (the plugin chained in front of the default one, ``ofs.authlib ++``: without ``++`` the
  database is never asked and group rules grant nothing).

What Debian's XRootD 5.5 and scitokens-cpp 0.7 need, found by trying: xrootd refuses to run
as root (``-R xrootd``, with its files owned by that user and under a directory it can
reach); scitokens-cpp fetches the issuer's keys over HTTPS with the system's CA store only, so
the keys are put in its key cache (``$XDG_CACHE_HOME/scitokens``) before the server starts,
which changes nothing outside this directory (a token signed by a key not there makes it
fetch the keys again, which fails: refused).

What it does not do: refuse at once over ``https://`` a token it accepted before the token
expired. The plugin keeps its decision on a token for 60 s from its first check
(:data:`TOKEN_DECISION_SECONDS`), whatever the token's ``exp``: it means to keep it until the
token expires, at least 60 s, but computes that as a monotonic clock (seconds since boot) minus
the epoch expiry, a negative number, so the 60 s floor always wins (XRootD 5.5.3 to 5.9.2;
fixed in 5.9.3 by "Fix ACL cache TTL computation from token expiry"). No setting changes it.
Measured here with a 10 s token checked 9 s before its expiry: served over ``https://`` 59.4 s
after that check (50 s past its expiry), refused at 61.5 s; over ``root://`` a new connection
with it was refused from its expiry on (ztn checks ``exp`` at each login).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from analysis_kernels.executor.processes import free_port
from hub_config.local.ca import LocalCA

XROOTD = "/usr/bin/xrootd"
SCITOKENS_PLUGIN = "libXrdAccSciTokens.so"
BASE = "/store"
WLCG_ANY = "https://wlcg.cern.ch/jwt/v1/any"
DEFAULT_GROUP_AREAS = {"cms": "/store/cms", "atlas": "/store/atlas"}
# The key cache entry outlives any run: scitokens-cpp refetches only for an unknown key.
KEY_CACHE_SECONDS = 10 * 365 * 24 * 3600
# How long the scitokens plugin honours a token after first accepting it, even past its
# expiry (see above): an expired token is served over https:// at most this long (and 1 s of
# the plugin's rounding) past its expiry.
TOKEN_DECISION_SECONDS = 60


def _missing_packages() -> str:
    """xrootd loads ``libXrdAccSciTokens.so`` as its versioned ``-5`` file."""
    if not Path(XROOTD).exists() or not list(Path("/usr/lib").glob("*/libXrdAccSciTokens-5.so")):
        return (
            f"the storage server needs {XROOTD} and libXrdAccSciTokens-5.so: "
            "apt-get install xrootd-server xrootd-scitokens-plugins (make run does it)"
        )
    return ""


@dataclass
class StorageServer:
    """Start with ``start()`` (or ``with``). ``directory`` must be reachable by the server's
    user (``xrootd`` when run as root): its parents need ``o+x``.

    ``group_areas`` maps a ``wlcg.groups`` group (no leading ``/``) to the path its members
    read; ``users`` get ``/store/user/<name>`` made (writable by their token's scope only).
    ``services`` are other issuers trusted for their tokens' scopes alone, by their keys
    (issuer -> JWKS, given, never fetched): a site's robot credentials, such as its XCache's.
    ``report_port``: XRootD's summary monitoring (``xrd.report``) sent there over UDP each
    second (what :class:`~hub_config.local.xcache.SummaryListener` reads).
    """

    directory: Path
    issuer: str
    ca: LocalCA
    users: list[str] = field(default_factory=list)
    group_areas: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_GROUP_AREAS))
    audiences: list[str] = field(default_factory=lambda: [WLCG_ANY])
    services: dict[str, dict] = field(default_factory=dict)
    report_port: int = 0
    port: int = 0
    http_port: int = 0
    process: subprocess.Popen | None = field(default=None, init=False)

    def __post_init__(self):
        self.directory = Path(self.directory).resolve()
        self.port = free_port(self.port)
        self.http_port = free_port(self.http_port)
        self.run_as = "xrootd" if os.geteuid() == 0 else ""

    @property
    def root_url(self) -> str:
        return f"root://127.0.0.1:{self.port}/"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    @property
    def data(self) -> Path:
        """Where ``/store`` lives on disk."""
        return self.directory / "data"

    def url(self, path: str, scheme: str = "root") -> str:
        """``root://host:port//store/...`` or ``https://host:port/store/...`` of a path."""
        path = "/" + path.lstrip("/")
        return f"{self.root_url}/{path.lstrip('/')}" if scheme == "root" else self.https_url + path

    def _owner(self) -> tuple[int, int]:
        if not self.run_as:
            return os.getuid(), os.getgid()
        entry = pwd.getpwnam(self.run_as)
        return entry.pw_uid, entry.pw_gid

    def _own(self, path: Path) -> None:
        uid, gid = self._owner()
        for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
            os.lchown(item, uid, gid)

    def publish(self, source: str | os.PathLike, path: str) -> str:
        """Copy a local file or directory to ``path`` under ``/store``; its root:// URL."""
        source, target = Path(source), self.data / path.strip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        self._own(self.data)
        return self.url(path)

    def _write(self, name: str, text: str) -> Path:
        path = self.directory / name
        path.write_text(text)
        return path

    def _key_cache(self) -> Path:
        """scitokens-cpp's key cache holding the issuer's keys, fetched here over HTTPS, and
        the services' keys as given."""
        context = ssl.create_default_context(cafile=self.ca.ca_file)
        with urllib.request.urlopen(f"{self.issuer}/jwk", context=context, timeout=30) as reply:
            keys = {self.issuer: json.load(reply)} | self.services
        cache = self.directory / "cache"
        (cache / "scitokens").mkdir(parents=True, exist_ok=True)
        now = int(time.time())
        db = sqlite3.connect(cache / "scitokens" / "scitokens_cpp.sqllite")
        with db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS keycache "
                "(issuer text UNIQUE PRIMARY KEY NOT NULL, keys text NOT NULL)"
            )
            for issuer, jwks in keys.items():
                entry = {
                    "jwks": jwks,
                    "expires": now + KEY_CACHE_SECONDS,
                    "next_update": now + KEY_CACHE_SECONDS,
                }
                db.execute(
                    "INSERT OR REPLACE INTO keycache VALUES (?, ?)", (issuer, json.dumps(entry))
                )
        db.close()
        return cache

    def _data_directives(self) -> str:
        """Where ``/store`` comes from: this server's disk (a cache reads its origin)."""
        for area in [*self.group_areas.values(), *(f"{BASE}/user/{u}" for u in self.users)]:
            (self.data / area.strip("/")).mkdir(parents=True, exist_ok=True)
        return f"all.export {BASE}\noss.localroot {self.data}\n"

    def _scitokens_config(self) -> str:
        services = "".join(
            f"\n[Issuer service{n}]\nissuer = {issuer}\nbase_path = {BASE}\n"
            "authorization_strategy = capability\n"
            for n, issuer in enumerate(self.services)
        )
        return (
            f"[Global]\naudience = {', '.join(self.audiences)}\n\n"
            f"[Issuer devidp]\nissuer = {self.issuer}\nbase_path = {BASE}\n"
            "authorization_strategy = capability group\n" + services
        )

    def _configure(self) -> Path:
        for name in ("adm", "run", "certs"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        cert, key = self.ca.issue(self.directory.name, owner=self._owner()[0])
        certs = self.directory / "certs"
        for item in certs.iterdir():
            item.unlink()
        for item in self.ca.cert_dir.iterdir():
            shutil.copy(item, certs / item.name)
        shutil.move(cert, self.directory / "host.pem")
        shutil.move(key, self.directory / "host.key")
        authdb = "".join(f"g /{group} {path} rl\n" for group, path in self.group_areas.items())
        self._write("authdb", authdb)
        self._write("scitokens.cfg", self._scitokens_config())
        d = self.directory
        report = (
            f"xrd.report 127.0.0.1:{self.report_port} every 1s all\n" if self.report_port else ""
        )
        config = f"""\
{self._data_directives()}all.adminpath {d / "adm"}
all.pidpath {d / "run"}
xrd.port {self.port}
xrd.network nodnr
xrd.tls {d / "host.pem"} {d / "host.key"}
xrd.tlsca certdir {certs}
xrootd.tls capable all
xrootd.seclib libXrdSec.so
sec.protocol ztn
sec.protbind * only ztn
ofs.authorize 1
acc.authdb {d / "authdb"}
acc.audit deny
ofs.authlib ++ {SCITOKENS_PLUGIN} config={d / "scitokens.cfg"}
xrd.protocol XrdHttp:{self.http_port} libXrdHttp.so
http.header2cgi Authorization authz
{report}"""
        self._key_cache()
        self._own(self.directory)
        return self._write("xrootd.cfg", config)

    def _environment(self) -> dict[str, str]:
        return os.environ | {"XDG_CACHE_HOME": str(self.directory / "cache")}

    def start(self) -> StorageServer:
        if problem := _missing_packages():
            raise RuntimeError(problem)
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self._configure()
        command = [XROOTD, "-c", str(config), "-l", str(self.directory / "xrootd.log")]
        if self.run_as:
            command += ["-R", self.run_as]
        self.process = subprocess.Popen(
            command,
            env=self._environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        """Ready when XrdHttp answers over TLS (403 without a token is an answer)."""
        context = ssl.create_default_context(cafile=self.ca.ca_file)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"xrootd exited with status {self.process.returncode} while starting; "
                    f"see {self.directory / 'xrootd.log'}"
                )
            try:
                urllib.request.urlopen(f"{self.https_url}{BASE}/", context=context, timeout=2)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"xrootd did not answer at {self.https_url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> StorageServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
