#!/usr/bin/env bash
# `make quickstart`: a first tour of herd on the embedded default (a local folder, no services).
# In a fresh ./.herd-quickstart: a repo of text files, Pachyderm's word-count pipelines (a map
# stage with glob /* and a reduce stage with glob /), the counts printed, then one more file
# and the counts again (only the new file's datum runs).
set -euo pipefail
cd "$(dirname "$0")/.."

export HERD_STORAGE="file://$PWD/.herd-quickstart"
unset HERD_BROKER
# The embedded default: user code as sandboxed local processes, even where a Docker engine
# answers (HERD_RUNTIME=auto would run the specs' `busybox` image there).
export HERD_RUNTIME=local
HERD="$PWD/.venv/bin/herd"
if [[ ! -x "$HERD" ]]; then
    echo "quickstart: $HERD not found (run 'make quickstart', which installs it)" >&2
    exit 1
fi

rm -rf .herd-quickstart
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
mkdir -p "$src/poems"
printf 'An old silent pond\nA frog jumps into the pond\nSplash! Silence again.\n' >"$src/poems/basho.txt"
printf 'Over the wintry\nforest, winds howl in rage\nwith no leaves to blow.\n' >"$src/poems/soseki.txt"
printf 'The light of a candle\nis transferred to another candle\nspring twilight\n' >"$src/poems/buson.txt"

run() {
    printf '\n$ herd %s\n' "$*"
    "$HERD" "$@"
}

echo "HERD_STORAGE=$HERD_STORAGE"
run create-repo words
run put-file words master / -r -f "$src/poems"
run list-file words master
run create-pipeline -f examples/wordcount/map.json
run create-pipeline -f examples/wordcount/reduce.json
run list-job
printf '\n$ herd get-file reduce master / -r -o counts   (the most frequent words)\n'
counts() {
    rm -rf "$src/counts"
    "$HERD" get-file reduce master / -r -o "$src/counts"
    (cd "$src/counts" && for word in *; do printf '%3s  %s\n' "$(cat "$word")" "$word"; done) | sort -rn | head -n 8
}
counts

printf 'The pond again\n' >"$src/issa.txt"
run put-file words master /issa.txt -f "$src/issa.txt"
run list-job -p map
counts

# Check the result: "pond" appears twice in basho.txt and once in issa.txt.
if [[ "$("$HERD" get-file reduce master /pond)" != 3 ]]; then
    echo "quickstart: expected 3 for 'pond', got '$("$HERD" get-file reduce master /pond)'" >&2
    exit 1
fi
printf '\nquickstart: OK. Look around with:\n'
printf '    export HERD_STORAGE=%s\n    .venv/bin/herd list-pipeline; .venv/bin/herd list-job; .venv/bin/herd get-logs -p map\n' "$HERD_STORAGE"
printf '(make quickstart starts again from an empty .herd-quickstart)\n'
