#!/bin/sh
# The cron example in one command: a pipeline ticked every 2 seconds for about 7 seconds by
# `herd run-cron`, then what it made. Needs `herd` on PATH and a fresh store.
set -eu
here=$(dirname "$0")
herd create-pipeline -f "$here/clock.json"   # also creates the cron repo clock_tick
herd run-cron &                               # ticks (and runs each tick's job) until stopped
ticker=$!
sleep 7
kill -TERM "$ticker"
wait "$ticker"
herd flush-commit clock_tick master > /dev/null   # the job of a tick the stop interrupted
echo "== clock_tick (one empty file per tick)"
herd list-file clock_tick master
echo "== clock /ticks (one line per tick, in tick order)"
herd get-file clock master /ticks
