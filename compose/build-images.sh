#!/usr/bin/env bash
# Build the images of herd's compose stack with no registry, cached on the Docker engine.
#
#   bash compose/build-images.sh [IMAGE...]     IMAGE: base redis moto herd busybox (default: all)
#                                               and prometheus (only when named)
#
#   base     $HERD_BASE_IMAGE (herd-base:local): Debian (bookworm) minbase + python3, python3-venv,
#            ca-certificates, busybox-static, made by debootstrap on this host and `docker import`ed
#   redis    $REDIS_IMAGE (herd-redis:local): FROM base, Debian's redis-server (apt inside the build)
#   moto     $MOTO_IMAGE (herd-moto:local): FROM base, moto's S3 server in a venv (the CI stand-in
#            for MinIO, see compose/ci.yml), single-threaded so conditional writes are atomic
#   herd     $HERD_IMAGE (herd:local): compose/Dockerfile with BASE_IMAGE=base and every wheel in
#            the context (installed with pip --no-index)
#   prometheus  $PROMETHEUS_IMAGE (herd-prometheus:local): FROM base, Debian's prometheus (apt
#            inside the build), for docker-compose.yml's `--profile monitoring`; not in the default
#            set (the cluster runs without it)
#   busybox  $BUSYBOX_IMAGE (herd-busybox:local): FROM scratch + this host's static busybox, the
#            user-code image of the examples; also tagged busybox:latest when the engine has no
#            busybox:latest of its own (the examples' specs say "image": "busybox")
#
# Nothing is pulled. Python wheels are downloaded on this host with pip (the index pip is
# configured with), for the base image's Python version, glibc and architecture, at the exact
# versions of constraints.txt (pyproject.toml only gives ranges).
#
# Cache: each image carries the label herd.inputs, a sha256 of everything it is built from (the
# recipe below, the files copied in, the base image's id). An image whose tag exists with the
# same label is not built again; a new base therefore rebuilds everything on top of it.
# Downloaded wheels are kept in $HERD_IMAGES_CACHE (~/.cache/herd-images) by requirement hash.
#
# Knobs: HERD_IMAGES_REBUILD=1 (ignore the cache), HERD_BASE_SUITE (the base's Debian release,
# bookworm), HERD_DEBIAN_MIRROR (debootstrap's mirror, default: debootstrap's own), HERD_PIP (the
# pip to download with: .venv's, else python3 -m pip), DOCKER_HOST (the engine). Needs root for
# debootstrap; installs debootstrap and busybox-static with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

HERD_BASE_IMAGE="${HERD_BASE_IMAGE:-herd-base:local}"
REDIS_IMAGE="${REDIS_IMAGE:-herd-redis:local}"
MOTO_IMAGE="${MOTO_IMAGE:-herd-moto:local}"
HERD_IMAGE="${HERD_IMAGE:-herd:local}"
BUSYBOX_IMAGE="${BUSYBOX_IMAGE:-herd-busybox:local}"
PROMETHEUS_IMAGE="${PROMETHEUS_IMAGE:-herd-prometheus:local}"
HERD_IMAGES_CACHE="${HERD_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herd-images}"
SUITE="${HERD_BASE_SUITE:-bookworm}"
BASE_PACKAGES=python3,python3-venv,ca-certificates,busybox-static
RECIPE=3  # bump when a recipe below changes in a way the hashed inputs do not show
LABEL=herd.inputs
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"  # the classic builder: no buildx needed
export PIP_DISABLE_PIP_VERSION_CHECK=1

started=$(date +%s)
say() { printf '[images %3ds] %s\n' "$(($(date +%s) - started))" "$*" >&2; }
die() { say "error: $*"; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/herd-images.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

sha() { sha256sum | cut -d' ' -f1; }

# logged NAME COMMAND...: run quietly into $TMP/NAME.log; on failure show its end and stop.
logged() {
    local name="$1" status=0
    shift
    "$@" >"$TMP/$name.log" 2>&1 || status=$?
    if ((status != 0)); then
        grep -v -e '^DEPRECATED: The legacy builder' -e '^ *BuildKit is currently disabled' \
            -e '^ *environment-variable\.$' "$TMP/$name.log" | tail -n 40 >&2
        die "$name failed (exit $status)"
    fi
}

# sha256 over the relative paths and contents of every file below a directory.
tree_hash() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha
}

label_of() { docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{.Id}}' "$1"; }

# True (and says so) when `tag` exists with inputs `hash`, unless HERD_IMAGES_REBUILD=1.
cached() {
    local tag="$1" hash="$2"
    if [[ "${HERD_IMAGES_REBUILD:-}" != 1 && "$(label_of "$tag")" == "$hash" ]]; then
        say "$tag is up to date (inputs ${hash:0:12})"
        return 0
    fi
    return 1
}

static_busybox() {  # the path of a static busybox (ldd fails on it), else exit 1
    local candidate
    for candidate in "$(command -v busybox 2>/dev/null)" /bin/busybox /usr/bin/busybox; do
        if [[ -n "$candidate" && -x "$candidate" ]] && ! ldd "$candidate" >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

need_package() {  # need_package COMMAND DEBIAN_PACKAGE: install the package unless COMMAND exists
    command -v "$1" >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "$1 is missing: apt-get install $2"
    fi
    # shellcheck source=scripts/services.sh
    source "$ROOT/scripts/services.sh"
    herd_apt_install "$2"
}

pip_cmd() {
    if [[ -n "${HERD_PIP:-}" ]]; then
        # shellcheck disable=SC2086 # a command line on purpose
        echo $HERD_PIP
    elif [[ -x "$ROOT/.venv/bin/python" ]]; then
        echo "$ROOT/.venv/bin/python -m pip"
    else
        echo "python3 -m pip"
    fi
}

# ---------------------------------------------------------------------------------------------
build_base() {
    local hash rootfs
    hash="$(printf 'recipe=%s suite=%s variant=minbase include=%s mirror=%s\n' \
        "$RECIPE" "$SUITE" "$BASE_PACKAGES" "${HERD_DEBIAN_MIRROR:-}" | sha)"
    cached "$HERD_BASE_IMAGE" "$hash" && return 0
    [[ "$(id -u)" -eq 0 ]] || die "debootstrap needs root (or build $HERD_BASE_IMAGE elsewhere and load it)"
    need_package debootstrap debootstrap
    rootfs="$TMP/rootfs"
    say "debootstrap --variant=minbase $SUITE (include $BASE_PACKAGES)"
    # Two tries: a mirror hiccup should not cost a CI run (debootstrap itself does not retry).
    # shellcheck disable=SC2086 # no mirror argument = debootstrap's default mirror
    if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" ${HERD_DEBIAN_MIRROR:-} \
        >"$TMP/debootstrap-1.log" 2>&1; then
        say "debootstrap failed ($(tail -n 1 "$TMP/debootstrap-1.log")); once more"
        rm -rf "$rootfs"
        # shellcheck disable=SC2086
        logged debootstrap debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" ${HERD_DEBIAN_MIRROR:-}
    fi
    # A smaller image: no downloaded .debs, no package lists (apt-get update in derived builds).
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$rootfs/etc/apt/apt.conf.d/90herd-no-recommends"
    say "docker import $HERD_BASE_IMAGE"
    # shellcheck disable=SC2016 # expanded by the inner bash
    logged import bash -o pipefail -c 'tar -C "$1" --numeric-owner -c . | docker import \
        --change "LABEL $2" \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV LANG=C.UTF-8" \
        --change "CMD [\"/bin/bash\"]" \
        - "$3"' import "$rootfs" "$LABEL=$hash" "$HERD_BASE_IMAGE"
    rm -rf "$rootfs"
}

# The base image's Python version, glibc and machine: what the wheels must fit.
PY_VERSION="" GLIBC_MINOR="" ARCH=""
probe_base() {
    [[ -n "$PY_VERSION" ]] && return 0
    local out
    out="$(docker run --rm --network none "$HERD_BASE_IMAGE" python3 -c \
        'import platform; print(platform.python_version(), platform.libc_ver()[1], platform.machine())')"
    read -r PY_VERSION glibc ARCH <<<"$out"
    GLIBC_MINOR="${glibc#2.}"
    GLIBC_MINOR="${GLIBC_MINOR%%.*}"
}

# download_wheels DEST REQUIREMENT...: binary wheels for the base image's Python, cached by hash.
download_wheels() {
    local dest="$1" key cache pip platforms=() minor
    shift
    probe_base
    for ((minor = GLIBC_MINOR; minor >= 17; minor--)); do platforms+=(--platform "manylinux_2_${minor}_${ARCH}"); done
    platforms+=(--platform "manylinux2014_${ARCH}")
    if [[ "$ARCH" == x86_64 ]]; then platforms+=(--platform manylinux2010_x86_64 --platform manylinux1_x86_64); fi
    key="$( { printf '%s\n' "$PY_VERSION" "${platforms[@]}" "$@"; cat "$ROOT/constraints.txt"; } | sha)"
    cache="$HERD_IMAGES_CACHE/wheels-${key:0:24}"
    if [[ ! -f "$cache/.complete" || "${HERD_IMAGES_REBUILD:-}" == 1 ]]; then
        pip="$(pip_cmd)"
        say "pip download for Python $PY_VERSION ($ARCH, glibc 2.$GLIBC_MINOR): $*"
        rm -rf "$cache"
        mkdir -p "$cache"
        # shellcheck disable=SC2086 # $pip is a command line
        $pip download -q --only-binary=:all: --implementation cp --python-version "$PY_VERSION" \
            "${platforms[@]}" -c "$ROOT/constraints.txt" -d "$cache" "$@" 2> >(grep -v '^WARNING: Location' >&2) || die "pip download failed"
        touch "$cache/.complete"
    else
        say "wheels from the cache: $cache"
    fi
    mkdir -p "$dest"
    cp "$cache"/*.whl "$dest/"
}

project_requirements() {
    python3 - "$ROOT/pyproject.toml" "$1" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
if sys.argv[2] == "deps":  # what the herd image installs: the dependencies, the cluster and server extras
    extras = project["optional-dependencies"]
    print("\n".join(project["dependencies"] + extras["cluster"] + extras["server"]))
else:  # the moto range of the dev extra (constraints.txt pins it)
    print(next(r.split("[")[0] + "[s3]" + r.split("]", 1)[1] for r in project["optional-dependencies"]["dev"]
               if r.startswith("moto")))
EOF
}

# ---------------------------------------------------------------------------------------------
build_redis() {
    local dockerfile
    # shellcheck disable=SC2016 # ${BASE_IMAGE} is the Dockerfile's
    dockerfile='ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get -o Acquire::Retries=3 update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 install -y -q --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
CMD ["redis-server", "--dir", "/data", "--protected-mode", "no", "--appendonly", "yes"]
'
    build_apt_image "$REDIS_IMAGE" redis redis-server "$dockerfile"
}

# Build IMAGE from DOCKERFILE (apt-get install PACKAGE on HERD_BASE_IMAGE) unless an image with
# the same recipe, base and Dockerfile is there already; NAME names its log and Dockerfile.
build_apt_image() {
    local image="$1" name="$2" package="$3" dockerfile="$4" base_id hash
    base_id="$(image_id "$HERD_BASE_IMAGE")"
    hash="$(printf '%s\n%s\n%s\n' "$RECIPE" "$base_id" "$dockerfile" | sha)"
    cached "$image" "$hash" && return 0
    say "docker build $image (apt-get install $package)"
    # --network host: apt needs the network, and the engine's default bridge may be absent.
    printf '%s' "$dockerfile" >"$TMP/$name.Dockerfile"
    logged "build-$name" docker build --force-rm --network host --build-arg BASE_IMAGE="$HERD_BASE_IMAGE" \
        --label "$LABEL=$hash" -t "$image" - <"$TMP/$name.Dockerfile"
}

build_prometheus() {
    local dockerfile
    # shellcheck disable=SC2016 # ${BASE_IMAGE} is the Dockerfile's
    dockerfile='ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get -o Acquire::Retries=3 update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 install -y -q --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
'
    build_apt_image "$PROMETHEUS_IMAGE" prometheus prometheus "$dockerfile"
}

build_moto() {
    local base_id hash ctx="$TMP/moto" requirement
    base_id="$(image_id "$HERD_BASE_IMAGE")"
    requirement="$(project_requirements moto)"
    mkdir -p "$ctx"
    cat >"$ctx/moto-s3-server.py" <<'EOF'
"""moto's S3 server, one request at a time: conditional writes (If-None-Match/If-Match) are atomic."""
import logging
import signal
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

logging.basicConfig(level=logging.WARNING)
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 in its container: no default action
host = sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9000
run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=False)
EOF
    cat >"$ctx/Dockerfile" <<'EOF'
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/moto \
 && /opt/moto/bin/pip install -q --no-index --find-links /tmp/wheels "moto[s3]" flask flask-cors \
 && rm -rf /tmp/wheels
COPY moto-s3-server.py /opt/moto/moto-s3-server.py
ENV PATH=/opt/moto/bin:$PATH PYTHONUNBUFFERED=1
EXPOSE 9000
CMD ["python", "/opt/moto/moto-s3-server.py", "0.0.0.0", "9000"]
EOF
    hash="$( { printf '%s\n%s\n%s\n' "$RECIPE" "$base_id" "$requirement"; tree_hash "$ctx"; } | sha)"
    cached "$MOTO_IMAGE" "$hash" && return 0
    download_wheels "$ctx/wheels" "$requirement" flask flask-cors
    say "docker build $MOTO_IMAGE"
    logged build-moto docker build --force-rm --network none --build-arg BASE_IMAGE="$HERD_BASE_IMAGE" \
        --label "$LABEL=$hash" -t "$MOTO_IMAGE" "$ctx"
}

build_herd() {
    local base_id hash ctx="$TMP/herd"
    base_id="$(image_id "$HERD_BASE_IMAGE")"
    # The context holds exactly what compose/Dockerfile copies (no .venv, .git, caches).
    mkdir -p "$ctx/compose"
    cp pyproject.toml constraints.txt README.md "$ctx/"
    cp compose/Dockerfile compose/bucket_init.py "$ctx/compose/"
    tar -c --exclude=__pycache__ --exclude='*.pyc' storage scheduler worker | tar -x -C "$ctx"
    hash="$( { printf '%s\n%s\n' "$RECIPE" "$base_id"; tree_hash "$ctx"; } | sha)"
    cached "$HERD_IMAGE" "$hash" && return 0
    # async-timeout: redis-py needs it below Python 3.11.3, and pip download evaluates that
    # marker with the host's patch version, not --python-version's.
    # shellcheck disable=SC2046 # one requirement per line
    download_wheels "$ctx/compose/wheels" $(project_requirements deps) async-timeout setuptools wheel
    say "docker build $HERD_IMAGE (compose/Dockerfile, BASE_IMAGE=$HERD_BASE_IMAGE, wheels offline)"
    logged build-herd docker build --force-rm --network none -f "$ctx/compose/Dockerfile" \
        --build-arg BASE_IMAGE="$HERD_BASE_IMAGE" --label "$LABEL=$hash" -t "$HERD_IMAGE" "$ctx"
}

build_busybox() {
    local hash ctx="$TMP/busybox" busybox alias=busybox:latest
    busybox="$(static_busybox)" || {
        need_package busybox-static busybox-static
        busybox="$(static_busybox)" || die "no static busybox (apt-get install busybox-static)"
    }
    mkdir -p "$ctx"
    cp "$busybox" "$ctx/busybox"
    printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCMD ["sh"]\n' >"$ctx/Dockerfile"
    hash="$( { echo "$RECIPE"; tree_hash "$ctx"; } | sha)"
    if ! cached "$BUSYBOX_IMAGE" "$hash"; then
        say "docker build $BUSYBOX_IMAGE (FROM scratch + $busybox)"
        logged build-busybox docker build --force-rm --network none --label "$LABEL=$hash" -t "$BUSYBOX_IMAGE" "$ctx"
    fi
    # The examples name "busybox": alias ours unless the engine has a busybox of its own.
    local current
    current="$(docker image inspect -f '{{.Id}}' "$alias" 2>/dev/null || true)"
    if [[ -z "$current" || -n "$(label_of "$alias")" ]]; then
        [[ "$current" == "$(image_id "$BUSYBOX_IMAGE")" ]] || docker tag "$BUSYBOX_IMAGE" "$alias"
        say "$alias is $BUSYBOX_IMAGE"
    else
        say "$alias exists on the engine and is not ours: left as it is"
    fi
}

# ---------------------------------------------------------------------------------------------
command -v docker >/dev/null 2>&1 || die "the docker CLI is missing (apt-get install docker.io)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker engine answers at ${DOCKER_HOST:-the default socket}"

targets=("$@")
((${#targets[@]})) || targets=(base redis moto herd busybox)
base_checked=0
for target in "${targets[@]}"; do
    case "$target" in
        base | redis | moto | herd | prometheus)
            if ((base_checked == 0)); then build_base; base_checked=1; fi
            [[ "$target" == base ]] || "build_$target" ;;
        busybox) build_busybox ;;
        *) die "unknown image '$target' (choose from: base redis moto herd busybox prometheus)" ;;
    esac
done
say "done: ${targets[*]}"
