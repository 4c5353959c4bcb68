#!/usr/bin/env bash
# System services for herd's tests: install the Debian packages, start/stop a Docker engine.
#
# Sourced (by .ci/run and scripts/test.sh) it defines functions; executed it is a small CLI:
#   bash scripts/services.sh install        # apt-get the missing packages (root), else print the command
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

HERD_APT_PACKAGES=(redis-server docker.io busybox-static bubblewrap)
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

# Install whatever of HERD_APT_PACKAGES is missing (root), or say how (not root). Returns 1 only
# when an install was attempted and failed.
herd_install_packages() {
    local missing=() pkg
    for pkg in "${HERD_APT_PACKAGES[@]}"; do
        herd_pkg_present "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        herd_say "system packages present: ${HERD_APT_PACKAGES[*]}"
        return 0
    fi
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        herd_say "missing: ${missing[*]} (tests that need them are skipped outside CI)"
        herd_say "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
        return 0
    fi
    herd_apt_install "${missing[@]}"
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
