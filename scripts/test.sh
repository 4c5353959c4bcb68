#!/usr/bin/env bash
# `make test`: install the system packages the tests need (root) and Compose v2 (with .venv's pip:
# make runs scripts/venv.sh first), make a Docker engine available,
# run pytest in .venv, stop what was started. Exits with pytest's exit code.
#
#   E2E=0           leave out the tests marked e2e (the compose stack; by default they run: they
#                   install debootstrap when missing and build the images,
#                   cached on the engine: minutes the first time, seconds after)
#   PYTEST_ARGS=... extra pytest arguments, e.g. PYTEST_ARGS='-k redis -x'
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/services.sh
source scripts/services.sh

trap herd_docker_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Types first: a wrong type fails in seconds, before the services start ([tool.mypy] in pyproject).
printf '[test] mypy --strict over storage scheduler worker\n' >&2
.venv/bin/mypy

herd_install_packages
herd_docker_up

# The e2e tests run the compose stack: docker-compose (1.29) and Compose v2 come with
# herd_install_packages (the compose-file checks run both, e2e or not); the first offline image
# build (compose/build-images.sh, run by the tests) needs debootstrap.
if [[ "${E2E:-1}" != 0 ]]; then
    e2e_missing=()
    command -v debootstrap >/dev/null 2>&1 || e2e_missing+=(debootstrap)
    if ((${#e2e_missing[@]})); then
        if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            herd_apt_install "${e2e_missing[@]}" || herd_say "could not install ${e2e_missing[*]}: the e2e tests will say why"
        else
            herd_say "missing for the e2e tests: ${e2e_missing[*]} (sudo apt-get install -y ${e2e_missing[*]})"
        fi
    fi
fi

# CI runs the `ci` hypothesis profile (tests/conftest.py), also when `make test` is its entry point.
if [[ "${CI:-}" == true ]]; then
    export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
fi

args=(-p no:cacheprovider -ra)
if [[ "${E2E:-1}" == 0 ]]; then
    args+=(-m "not e2e")
fi
read -r -a extra <<<"${PYTEST_ARGS:-}"

printf '[test] .venv/bin/python -m pytest %s %s\n' "${args[*]}" "${extra[*]}" >&2
status=0
.venv/bin/python -m pytest "${args[@]}" "${extra[@]}" || status=$?
case "$status" in
    0) printf '[test] pytest passed\n' >&2 ;;
    5) printf '[test] pytest exited 5: no tests were collected\n' >&2 ;;
    *) printf '[test] pytest exited %d\n' "$status" >&2 ;;
esac
exit "$status"
