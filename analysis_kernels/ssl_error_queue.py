"""TLS reads and writes that start with OpenSSL's error queue empty.

OpenSSL keeps one error queue per thread, and ``SSL_get_error`` reads it: an I/O call made
while the queue still holds another connection's failure reports that failure as its own.
CPython's ``ssl`` does not empty the queue before ``SSL_read_ex``/``SSL_write_ex``
(python/cpython#148594, open), and with Python 3.13 and OpenSSL 3.5, as in the facility's
image, a peer that resets one connection (a Dask nanny closing its registration comm while
the scheduler answers) makes the next read on a healthy connection of the same thread raise
``BrokenPipeError``: Dask then drops a client's or a worker's comm mid-call. ``install``
empties the queue before every read, write and handshake of ``ssl.SSLSocket`` and
``ssl.SSLObject`` (tornado's streams use the first, asyncio's and anyio's the second).
The image runs it at every Python start (a ``.pth`` file), so every process in a user's
pods has it: server, kernels, Dask scheduler, nannies and workers.
"""

from __future__ import annotations

import ctypes
import functools
import ssl

PATCHED = {
    ssl.SSLSocket: ("read", "write", "send", "do_handshake", "unwrap"),
    ssl.SSLObject: ("read", "write", "do_handshake", "unwrap"),
}


def libcrypto() -> ctypes.CDLL:
    """OpenSSL as ``ssl`` links it: symbols looked up through ``_ssl``'s own handle resolve in
    the libcrypto it depends on (the queue is that library's), not in another copy that ROOT's
    or XRootD's wheels map into the same process. ``None`` where ``_ssl`` is built into the
    interpreter."""
    import _ssl

    return ctypes.CDLL(getattr(_ssl, "__file__", None))


def _clearing(method, clear):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        clear()
        return method(self, *args, **kwargs)

    call.clears_openssl_errors = True
    return call


def install() -> None:
    """Wrap the TLS I/O methods to empty the calling thread's queue first (idempotent)."""
    clear = libcrypto().ERR_clear_error
    for cls, names in PATCHED.items():
        for name in names:
            method = getattr(cls, name)
            if not getattr(method, "clears_openssl_errors", False):
                setattr(cls, name, _clearing(method, clear))
