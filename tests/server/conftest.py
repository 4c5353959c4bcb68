"""Fixtures of the server tests: a real `herd serve` and the CLI through it."""

from tests.fixtures.server import herd_server, local, remote  # noqa: F401 - fixtures
