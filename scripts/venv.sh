#!/usr/bin/env bash
# Make sure .venv exists and has this project installed (pip install -e '.[dev]' with the exact
# versions of constraints.txt).
#
# The install runs only when pyproject.toml or constraints.txt changed since the last one: a
# sha256 of both is kept in .venv/.herd-pyproject.sha256. Needs Python 3.11+ (PYTHON=python3.12 to choose another).
# On Debian/Ubuntu without python3-venv it installs that package when root, else prints the command.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
STAMP="$VENV/.herd-pyproject.sha256"
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '[venv] %s\n' "$*" >&2; }

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    say "herd needs Python 3.11 or newer; none found (set PYTHON=/path/to/python3.11)"
    return 1
}

install_venv_package() {
    local py="$1" pkgs
    pkgs="python3-venv $("$py" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')"
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "python -m venv failed: installing $pkgs"
        if [[ "${HERD_APT_UPDATED:-}" != 1 ]]; then
            apt-get -o Acquire::Retries=3 update -q
            export HERD_APT_UPDATED=1
        fi
        # The versioned package may not exist on every release; the generic one is enough there.
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs </dev/null \
            || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv </dev/null
    else
        say "python -m venv failed (ensurepip missing). Install it, then run make again:"
        say "    sudo apt-get install -y $pkgs"
        exit 1
    fi
}

create_venv() {
    local py
    py="$(find_python)"
    say "creating $VENV with $py ($("$py" --version 2>&1))"
    if ! "$py" -m venv "$VENV"; then
        rm -rf "$VENV"
        install_venv_package "$py"
        "$py" -m venv "$VENV"
    fi
}

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import pip' 2>/dev/null; then
    rm -rf "$VENV"
    create_venv
fi

want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    say "pyproject.toml or constraints.txt changed since the last install: pip install -c constraints.txt -e '.[dev]'"
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install -q --progress-bar off -c constraints.txt -e '.[dev]'
    printf '%s\n' "$want" >"$STAMP"
else
    say "$VENV is up to date with pyproject.toml and constraints.txt"
fi
