"""Stopping the node puts the machine back as it was, and a second node starts on it.

Runs after the other tests of the node (it stops the session's node first)."""

from __future__ import annotations

import pytest

from charts.node.host import links
from charts.node.node import INTERFACE, Node
from tests.node.real_node import apply, busybox_pod, kubectl, wait_succeeded

pytestmark = pytest.mark.slow


def test_stop_leaves_nothing_and_a_second_node_starts(node, tmp_path_factory):
    node.stop()
    assert node.host.leftovers() == {}
    assert INTERFACE not in links()
    # A short directory: containerd refuses a socket path over 104 bytes.
    with Node(tmp_path_factory.mktemp("second")) as second:
        kubectl(second, "wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
        apply(second, busybox_pod("again", "default", "echo again", restartPolicy="Never"))
        assert wait_succeeded(second, "default", "again").strip() == "again"
    assert second.host.leftovers() == {}
