"""Test configuration. Each real service has its own fixture module under tests/fixtures/.

Fixtures start real servers once per session on free loopback ports. Outside CI a missing
service skips its tests with a reason; with CI=true it fails them instead.

Hypothesis profiles, chosen by HYPOTHESIS_PROFILE (CI sets `ci`), for every property test:
`dev` (default): hypothesis's example count, no per-example deadline (noisy on shared machines);
`ci`: deterministic (derandomize), more examples, no deadline (shared CI runners are slow);
`quick`: a few examples, for a fast look while editing. A test keeps its own
`@settings(max_examples=...)` only when its examples are expensive (real stores).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci", derandomize=True, max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("quick", max_examples=10, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

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
