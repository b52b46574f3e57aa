"""Grid storage with the user's own token: ROOT files and harvested pieces over ``root://`` and
``https://``, from the user's server and every Dask worker.

- ``root://`` (and ``roots://``): XRootD's own client (the ``xrootd`` Python bindings, through
  fsspec-xrootd, which uproot uses). It finds the token by WLCG discovery itself and proves it
  with ztn over TLS (``X509_CERT_DIR`` must trust the storage). It authenticates only when it
  opens a connection, which it keeps for later files of the same server and login name: the
  login name here is a digest of the current token (never the token), so files opened after
  a refresh go over a connection authenticated with the new token. (XRootD 5.5.3 still let a
  connection whose token had expired open files, seen here: the storage, not the expiry,
  would otherwise decide how long an old token's rights last.)
- ``https://``: fsspec's HTTP filesystem on aiohttp, with ``Authorization: Bearer`` added to
  every request from the token as it is at that moment (HTTP clients do no discovery).

Each open reads the token anew (:mod:`analysis_kernels.bearer_token`) and refuses an expired
one itself. What the storage refuses becomes an :class:`~analysis_kernels.errors.InputError`
naming the file, why, and what to do, without the token; ``skip_bad`` then accounts for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from analysis_kernels import bearer_token
from analysis_kernels.errors import InputError

XROOTD_SCHEMES = ("root://", "roots://")
HTTP_SCHEMES = ("https://", "http://")
# XrdCl's defaults retry a server that does not answer for minutes (5 tries in 120 s windows);
# a run should hear at once that the storage is down. Set before XrdCl first loads.
for _name, _value in {"XRD_CONNECTIONRETRY": "1", "XRD_CONNECTIONWINDOW": "10"}.items():
    os.environ.setdefault(_name, _value)


class GridAccessError(InputError):
    """The storage could not be reached, or refused this token for this file."""


def is_remote(path: str | os.PathLike) -> bool:
    return str(path).startswith(XROOTD_SCHEMES + HTTP_SCHEMES)


def _token(url: str, what: str) -> bearer_token.BearerToken:
    """The token for one operation, refused here when it is missing, expired or ignored."""
    try:
        token = bearer_token.find(what)
        token.check_fresh(what)
    except bearer_token.TokenError as err:
        raise GridAccessError(str(err), file=url) from None
    path = token.source.partition("=")[2] or token.source
    if url.startswith(XROOTD_SCHEMES) and token.source != "BEARER_TOKEN":
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            raise GridAccessError(
                f"{what}: the XRootD client ignores the token file {path} because others may "
                f"read it (mode {mode:o}): chmod 600 {path}",
                file=url,
            )
    return token


def _digest(token: bearer_token.BearerToken) -> str:
    return "t" + hashlib.sha256(token.value.encode()).hexdigest()[:12]


def login_name(url: str) -> str | None:
    """Which token an open of ``url`` would use now (a digest, None without one): a file opened
    with another token is opened again."""
    try:
        return _digest(bearer_token.find())
    except bearer_token.TokenError:
        return None


def _login_url(url: str, token: bearer_token.BearerToken) -> str:
    """``url`` with a login name derived from the token, so a new token opens a new connection."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{_digest(token)}@{host}"))


async def _http_client(**kwargs):
    """An aiohttp session adding the current token to each request (fsspec's ``get_client``)."""
    import aiohttp

    async def bearer(request, handler):
        token = _token(str(request.url), f"{request.method} {request.url}")
        request.headers["Authorization"] = f"Bearer {token.value}"
        return await handler(request)

    # The trust store of the moment (SSL_CERT_FILE): aiohttp's own is read once, at import.
    kwargs.setdefault("connector", aiohttp.TCPConnector(ssl=ssl.create_default_context()))
    return aiohttp.ClientSession(middlewares=(bearer,), **kwargs)


def filesystem(url: str):
    """An fsspec filesystem and path for a ``root://`` or ``https://`` URL, with the token."""
    import fsspec

    if url.startswith(XROOTD_SCHEMES):
        token = _token(url, f"accessing {url}")
        return fsspec.core.url_to_fs(_login_url(url, token))
    return fsspec.core.url_to_fs(url, get_client=_http_client)


def _explain(err: BaseException, url: str, action: str) -> GridAccessError:
    """What the storage's or the client's error means for the user, without the token."""
    # fsspec-xrootd wraps XRootD's status in a repr of the bound method that failed.
    text = re.sub(
        r"Failed to submit <bound method .*?>> request: ", "", f"{type(err).__name__}: {err}"
    )
    low = text.lower()
    host = urlsplit(url).netloc.rpartition("@")[2]
    try:
        held = bearer_token.find().describe()
    except bearer_token.TokenError:
        held = "no token"
    if isinstance(err, GridAccessError):
        return err
    if any(
        s in low
        for s in (
            "connection refused",
            "connection error",
            "cannot connect",
            "operation expired",
            "connect call failed",
        )
    ):
        why = (
            f"the storage at {host} does not answer ({text}). It may be down or the URL "
            "wrong: check the URL and try again later (skip_bad=True runs on without it)"
        )
    elif "auth failed" in low or "no protocols left" in low or " 401" in low or "401," in low:
        why = (
            f"the storage at {host} did not accept {held} ({text}). It trusts tokens of one "
            "issuer and audience, signed by that issuer's keys; log in to the facility again "
            "for a fresh token, and check that X509_CERT_DIR trusts the storage's certificate"
        )
    elif "permission denied" in low or "403" in low or "forbidden" in low:
        path = (
            urlsplit(url).path.lstrip("/") if url.startswith(XROOTD_SCHEMES) else urlsplit(url).path
        )
        path = "/" + path.lstrip("/")
        verb = "read" if action == "reading" else "create"
        why = (
            f"permission denied for {action} {path}: {held} grants no {verb} there. It needs "
            f"the scope storage.{verb}:<that path below the storage's base> or a group "
            "(wlcg.groups) the storage lets read it; ask the data's owner or your VO admin. "
            "A storage that does not accept the token's issuer or audience refuses the same way"
        )
    elif isinstance(err, FileNotFoundError) or "no such file" in low or "not found" in low:
        why = f"file not found on the storage at {host} ({text})"
    else:
        why = f"{action} failed ({text})"
    return GridAccessError(why, file=url)


@contextlib.contextmanager
def _explained(url: str, action: str) -> Iterator[None]:
    """Errors in the block become a :class:`GridAccessError`, raised outside the handler so it
    carries no client exception along (some cannot cross a Dask process boundary)."""
    failure = None
    try:
        yield
    except Exception as err:
        failure = _explain(err, url, action)
    if failure is not None:
        raise failure


def open_root(url: str, **options):
    """``uproot.open`` of a grid URL with the current token; refusals named and explained."""
    import uproot

    with _explained(url, "reading"):
        if url.startswith(XROOTD_SCHEMES):
            return uproot.open(_login_url(url, _token(url, f"opening {url}")), **options)
        _token(url, f"opening {url}")
        handler = uproot.source.fsspec.FSSpecSource
        return uproot.open(url, handler=handler, get_client=_http_client, **options)


async def _make_collection(fs, url: str) -> None:
    """MKCOL of ``url``: its folder made, or the refusal before any upload (XrdHttp answers a
    refused PUT by closing the connection mid-body, and its 100-continue is malformed)."""
    session = await fs.set_session()
    async with session.request("MKCOL", url) as reply:
        if reply.status in (401, 403):
            reply.raise_for_status()


def put_file(local: str | os.PathLike, url: str) -> None:
    """Upload a local file to a grid URL (XRootD write, or an HTTP PUT)."""
    from fsspec.asyn import sync

    with _explained(url, "writing"):
        fs, path = filesystem(url)
        if url.startswith(XROOTD_SCHEMES):  # fsspec-xrootd has no put_file: write it
            fs.makedirs(str(Path(path).parent), exist_ok=True)
            with open(local, "rb") as source, fs.open(path, "wb") as target:
                shutil.copyfileobj(source, target, 8 << 20)
        else:
            sync(fs.loop, _make_collection, fs, path.rsplit("/", 1)[0])
            fs.put_file(str(local), path, method="put")


@contextlib.contextmanager
def open_input(url: str) -> Iterator:
    """A readable binary file object of a grid URL."""
    with _explained(url, "reading"):
        fs, path = filesystem(url)
        handle = fs.open(path, "rb")
    with handle:
        yield handle


def is_dir(url: str) -> bool:
    """Whether an XRootD URL names a directory (a stat on the storage)."""
    with _explained(url, "reading"):
        fs, path = filesystem(url)
        return fs.isdir(path)


def listing(url: str, pattern: str = "*.root") -> list[str]:
    """Files of an XRootD directory URL matching ``pattern``, or those matching a glob in its
    last part: sorted ``root://host//path`` URLs (the URL's own login name, if any, kept)."""
    import fnmatch

    fs, path = filesystem(url)
    directory, glob = (path, pattern) if not any(c in path for c in "*?[") else path.rsplit("/", 1)
    with _explained(url, "reading"):
        names = [Path(p).name for p in fs.ls(directory, detail=False)]
    prefix = urlunsplit(urlsplit(url)._replace(path="", query="", fragment=""))
    return sorted(
        f"{prefix}//{directory.strip('/')}/{n}" for n in names if fnmatch.fnmatch(n, glob)
    )
