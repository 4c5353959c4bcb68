"""Fixtures of the CLI tests: the local runtime pinned (autouse) and `work`, the current
directory of the commands."""

from tests.fixtures.cli import _local_runtime, work  # noqa: F401 - fixtures
