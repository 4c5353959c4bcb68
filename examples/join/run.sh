#!/bin/sh
# The join example in one command: its data, its pipeline, then what the pipeline made.
set -eu
here=$(dirname "$0")
sh "$here/data.sh"
herd create-pipeline -f "$here/join.json"
herd flush-commit purchases master > /dev/null    # returns when the sales job is done
for store in STORE1 STORE2 STORE4; do
  echo "== $store.txt"
  herd get-file sales master "/$store.txt"
done
