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


def pytest_configure(config: object) -> None:
    """Give children the default Ctrl-C: a shell starts background jobs with SIGINT ignored.

    An ignored signal stays ignored across exec, so under `make test &` (or any CI runner that
    starts the tests as a background job) every `herd` a test starts would ignore the SIGINT
    the Ctrl-C tests send it. A Python-level handler is reset to the default on exec.
    """
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
