"""A failure left on OpenSSL's per-thread error queue must not fail a healthy TLS read
(python/cpython#148594): the spurious BrokenPipeError that dropped Dask comms on the real
node. Each case runs in a process of its own, so that one case's patched ``ssl`` cannot
decide another's; the stale failure is put on the queue as OpenSSL itself records a broken
pipe (library SYS, reason EPIPE). The real node's test runs the same with a peer's reset in
the image's Python (tests/e2e)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASE = r"""
import errno, socket, ssl, sys, tempfile, threading
from analysis_kernels.dask_tls import CERT, KEY, user_certificate
from analysis_kernels.ssl_error_queue import install, libcrypto

if "beside-another-libcrypto" in sys.argv:
    from XRootD import client  # noqa: F401 (its wheel maps an OpenSSL 1.1 of its own)
if "installed" in sys.argv:
    install()
folder = tempfile.mkdtemp()
for name, text in user_certificate("alice").items():
    open(f"{folder}/{name}", "w").write(text)
server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_context.load_cert_chain(f"{folder}/{CERT}", f"{folder}/{KEY}")
client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
client_context.load_verify_locations(f"{folder}/{CERT}")
client_context.check_hostname = False

def stale_broken_pipe():
    crypto = libcrypto()
    crypto.ERR_new()
    crypto.ERR_set_debug(None, 0, None)
    crypto.ERR_set_error(2, errno.EPIPE, None)  # ERR_LIB_SYS, as a failed send() records it
    assert crypto.ERR_peek_error()

def healthy(read):
    stale_broken_pipe()
    try:
        read()
    except ssl.SSLWantReadError:
        return "healthy"
    except OSError as e:
        return f"spurious {e!r}"
    return "data out of nowhere"

# ssl.SSLSocket (tornado's streams): a connected pair on 127.0.0.1, nothing sent yet.
listener = socket.create_server(("127.0.0.1", 0))
client = []
connecting = threading.Thread(target=lambda: client.append(client_context.wrap_socket(
    socket.create_connection(listener.getsockname()))))
connecting.start()
server = server_context.wrap_socket(listener.accept()[0], server_side=True)
connecting.join()
server.setblocking(False)
print("socket", healthy(lambda: server.recv(10)))
client[0].sendall(b"after")
server.setblocking(True)
print("then", server.recv(10).decode())

# ssl.SSLObject (asyncio's and anyio's): memory BIOs, handshake done in memory.
bios = [ssl.MemoryBIO() for _ in range(4)]
ends = [client_context.wrap_bio(bios[0], bios[1]),
        server_context.wrap_bio(bios[2], bios[3], server_side=True)]
for _ in range(4):
    for end in ends:
        try:
            end.do_handshake()
        except ssl.SSLWantReadError:
            pass
    bios[2].write(bios[1].read())
    bios[0].write(bios[3].read())
print("object", healthy(lambda: ends[1].read(10)))
"""


def run_case(*modes: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", CASE, *modes], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def test_without_it_a_stale_failure_fails_a_healthy_read():
    """The mechanism, on this machine's Python and OpenSSL: what ``install`` must undo."""
    outcome = run_case("plain")
    assert outcome["socket"].startswith("spurious"), outcome
    assert outcome["object"].startswith("spurious"), outcome


def test_with_it_healthy_reads_wait_for_data_and_then_get_it():
    outcome = run_case("installed")
    assert outcome == {"socket": "healthy", "then": "after", "object": "healthy"}


def test_it_clears_the_queue_ssl_uses_where_other_openssl_copies_are_mapped():
    """XRootD's and ROOT's wheels bring their own libcrypto: clearing one of those would
    leave ssl's queue as it was."""
    outcome = run_case("installed", "beside-another-libcrypto")
    assert outcome == {"socket": "healthy", "then": "after", "object": "healthy"}


def test_install_is_idempotent_and_keeps_the_methods_names():
    import ssl

    from analysis_kernels.ssl_error_queue import PATCHED, install

    before = {(cls, name): getattr(cls, name) for cls, names in PATCHED.items() for name in names}
    try:
        install()
        once = {key: getattr(*key) for key in before}
        install()
        assert {key: getattr(*key) for key in before} == once
        assert all(getattr(*key).__name__ == key[1] for key in before)
        assert ssl.SSLSocket.read.__wrapped__ is before[(ssl.SSLSocket, "read")]
    finally:
        for (cls, name), method in before.items():
            setattr(cls, name, method)


@pytest.mark.parametrize("mode", ["plain", "installed"])
def test_each_case_runs_in_a_fresh_process(mode):
    """Guards the two cases above: the parent's ssl stays unpatched whatever they did."""
    import ssl

    run_case(mode)
    assert not getattr(ssl.SSLSocket.read, "clears_openssl_errors", False)
