"""The real node (charts/node) for this directory's tests; tests/e2e imports the same fixture."""

from tests.node.real_node import node  # noqa: F401 - the fixture, one module for all conftests
