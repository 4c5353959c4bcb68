"""Test configuration. Each real service has its own fixture module under tests/fixtures/.

Fixtures start real servers once per session on free loopback ports. Outside CI a missing
service skips its tests with a reason; with CI=true it fails them instead.
"""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.s3",
    "tests.fixtures.redis",
    "tests.fixtures.docker",
]
