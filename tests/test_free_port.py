"""``free_port`` keeps a preferred port across a quick restart, and only while nothing listens."""

from __future__ import annotations

import socket

import pytest

from analysis_kernels.executor.processes import free_port


def _listener() -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_a_port_in_use_is_replaced_by_another():
    with _listener() as server:
        port = server.getsockname()[1]
        assert free_port(port) != port


def test_a_port_left_in_time_wait_by_a_stopped_server_is_kept():
    server = _listener()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    connection, _ = server.accept()
    connection.close()  # the server closes first, so its side waits in TIME-WAIT
    assert client.recv(1) == b""
    client.close()
    server.close()
    # A probe without SO_REUSEADDR, as before, finds the port busy.
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert free_port(port) == port
