"""Fixtures of the scheduler tests: the local runtime pinned (autouse) and `work`, the current
directory of the tests that run `herd` commands. Hypothesis profiles: tests/conftest.py."""

from tests.fixtures.cli import _local_runtime, work  # noqa: F401 - fixtures
